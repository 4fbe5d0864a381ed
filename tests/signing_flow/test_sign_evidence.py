"""What `sign` embeds from the recordings, and that one contract is signed once even when asked twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from recordings import ManifestSigner, RecorderConfig, SegmentWriter, TrackInfo
from recordings.journal import read_journal
from rtc_server.appkeys import SERVICES
from rtc_server.lifecycle import Action
from tests.recordings.rec_media import VIDEO_RATE, as_frames, record, video_packets
from tests.support import Api, assert_error


async def test_sign_embeds_recordings_and_signs_once(api: Api, tmp_path: Path) -> None:
    created = await api.create_signing()
    sid = created["id"]
    services = api.app[SERVICES]
    # One track sealed (a manifest), one still recording (a journal): what a signing sees mid-call.
    rec_dir = services.config.data_path / "recordings" / sid
    signer = ManifestSigner(ec.generate_private_key(ec.SECP256R1()))
    packets = video_packets(seconds=2.0)
    await asyncio.to_thread(record, rec_dir / "par_a_video_0", "vp8", packets, signer)
    open_writer = SegmentWriter(
        rec_dir / "par_b_video_0",
        TrackInfo("par_b_video_0", "vp8", clock_base=1_700_000_000.0, participant="par_b"),
        signer,
        RecorderConfig(segment_duration_s=0.5, reserve_bytes=4096),
    )
    for frame in as_frames(packets, VIDEO_RATE, 1_700_000_001.0):
        open_writer.write(frame)
    manifest_sha = hashlib.sha256((rec_dir / "par_a_video_0" / "manifest.json").read_bytes()).hexdigest()
    head = read_journal(rec_dir / "par_b_video_0").segments[-1].chain

    for action in (Action.GO_LIVE, Action.CONFIRM_IDENTITY, Action.CONSENT):
        await services.sessions.transition(None, sid, action, f"test.{action.value}", {})
    url = f"/api/v1/signings/{sid}/sign"
    first, second = await asyncio.gather(
        api.client.post(url, headers=api.auth(api.officer)),
        api.client.post(url, headers=api.auth(api.officer)),
    )
    statuses = sorted([first.status, second.status])
    assert statuses == [200, 409], (await first.text(), await second.text())
    loser = first if first.status == 409 else second
    assert_error(await loser.json())
    open_writer.close()

    pdf = tmp_path / "signed.pdf"
    resp = await api.client.get(f"/api/v1/signings/{sid}/document", headers=api.auth(api.officer))
    pdf.write_bytes(await resp.read())
    listed = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True).stdout
    assert "recording-par_a_video_0-manifest.json" in listed
    assert "recording-par_b_video_0" not in listed  # no manifest yet: its chain head is in the evidence
    subprocess.run(
        ["pdfdetach", "-savefile", "signing-evidence.json", "-o", str(tmp_path / "e.json"), str(pdf)]
    )
    tracks = {t["track_id"]: t for t in json.loads((tmp_path / "e.json").read_text())["recordings"]}
    assert tracks["par_a_video_0"] == {
        "track_id": "par_a_video_0",
        "state": "sealed",
        "label": "par_a_video_0 manifest",
        "sha256": manifest_sha,
    }
    assert tracks["par_b_video_0"]["state"] == "recording" and tracks["par_b_video_0"]["sha256"] == head
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True).stdout
    assert manifest_sha[:32] in text.replace("\n", "") and head[:32] in text.replace("\n", "")
    trail = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    assert [e["type"] for e in trail].count("signing.signed") == 1
    started = next(e for e in trail if e["type"] == "signing.started")
    assert sorted(started["data"]["recordings"]) == ["par_a_video_0", "par_b_video_0"]
