"""Every published track is recorded, sealed at end, listed, zipped, and verifies offline."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rtc_server.appkeys import SERVICES
from tests.media.media_clients import answer, publisher_client, wait_until
from tests.support import Api, assert_error, make_config, start_api

BIN = str(Path(sys.executable).parent / "rtc-server")
SDP = {"Content-Type": "application/sdp"}


async def _publish(api: Api, sid: str, token: str, frames: int = 60):  # type: ignore[no-untyped-def]
    publisher, offer = await publisher_client("VP8", clip_frames=frames)
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/whip", data=offer, headers={**SDP, **api.auth(token)}
    )
    assert resp.status == 201, await resp.text()
    await answer(publisher.pc, await resp.text())
    return publisher


@pytest.mark.slow
async def test_tracks_recorded_sealed_listed_and_zipped(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    config = make_config(tmp_path / "d", recording={"segment_duration_s": 1.0})
    api = await start_api(aiohttp_client, config)
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    publisher = await _publish(api, sid, staff)
    media = api.app[SERVICES].media
    try:
        await wait_until(lambda: media.stats().frames_received > 90, within=15)
        live = await (
            await api.client.get(f"/api/v1/sessions/{sid}/recordings", headers=api.auth(api.officer))
        ).json()
        assert {t["kind"] for t in live} == {"audio", "video"} and not any(t["sealed"] for t in live)
        resp = await api.client.get(f"/api/v1/sessions/{sid}/evidence", headers=api.auth(api.officer))
        assert resp.status == 409
        assert_error(await resp.json(), "session_not_ended")
    finally:
        await publisher.close()
    resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    assert resp.status == 200
    tracks = await (
        await api.client.get(f"/api/v1/sessions/{sid}/recordings", headers=api.auth(api.officer))
    ).json()
    assert {t["kind"]: t["codec"] for t in tracks} == {"audio": "opus", "video": "vp8"}
    participant = created["invites"]["staff"]["participant_id"]
    for track in tracks:
        assert track["sealed"] and track["participant_id"] == participant
        assert track["segments"] and all(len(s["sha256"]) == 64 for s in track["segments"])
        manifest = await api.client.get(track["manifest_url"], headers=api.auth(api.officer))
        assert manifest.status == 200
        signed = (await manifest.json())["signed"]
        assert signed["chain_head"] == track["chain_head"]
    video = next(t for t in tracks if t["kind"] == "video")
    seg = await api.client.get(
        f"/api/v1/sessions/{sid}/recordings/{video['track_id']}/{video['segments'][0]['file']}",
        headers=api.auth(api.officer),
    )
    assert seg.status == 200 and seg.content_type == "video/webm"
    for bad in ("journal.jsonl", "seg_000000.webm.bak", "..%2Fmanifest.json"):
        resp = await api.client.get(
            f"/api/v1/sessions/{sid}/recordings/{video['track_id']}/{bad}", headers=api.auth(api.officer)
        )
        assert resp.status == 404
    detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
    assert len(detail["recordings"]) == 2
    trail = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    await wait_until(lambda: True)
    sealed = [e for e in trail if e["type"] == "recording.sealed"]
    assert len(sealed) == 2

    # The session's folder and the evidence zip both verify offline; a flipped byte names its segment.
    folder = config.data_path / "recordings" / sid
    key = await (await api.client.get("/api/v1/pki/recording-key.pem")).read()
    (tmp_path / "key.pem").write_bytes(key)
    # The manifests chain to the bank's published root, and their chain heads carry a TSA token.
    (tmp_path / "ca.pem").write_bytes(await (await api.client.get("/api/v1/pki/ca.pem")).read())
    anchored = subprocess.run(
        [BIN, "verify-recording", str(folder), "--trust", str(tmp_path / "ca.pem")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    assert anchored.stdout.count("timestamped") == 2, anchored.stdout
    ok = subprocess.run(
        [BIN, "verify-recording", str(folder), "--trust", str(tmp_path / "key.pem")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    resp = await api.client.get(f"/api/v1/sessions/{sid}/evidence", headers=api.auth(api.officer))
    assert resp.status == 200 and resp.content_type == "application/zip"
    data = await resp.read()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "VERIFY.txt" in names and "audit/events.json" in names and "keys/recording-key.pub.pem" in names
    assert "ca.pem" in names
    assert sum(n.endswith("manifest.json") for n in names) == 2
    (tmp_path / "evidence.zip").write_bytes(data)
    ok = subprocess.run(
        [BIN, "verify-recording", str(tmp_path / "evidence.zip")], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    segment = folder / video["track_id"] / video["segments"][0]["file"]
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    segment.write_bytes(bytes(raw))
    bad = subprocess.run([BIN, "verify-recording", str(folder)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert re.search(r"segment 0 \(seg_000000\.webm\)", bad.stdout + bad.stderr), bad.stdout + bad.stderr
    missing = subprocess.run(
        [BIN, "verify-recording", str(tmp_path / "nothing-here")], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2


@pytest.mark.slow
async def test_publisher_reconnect_continues_on_the_participant_clock(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    config = make_config(tmp_path / "d", recording={"segment_duration_s": 1.0})
    api = await start_api(aiohttp_client, config)
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    media = api.app[SERVICES].media
    first = await _publish(api, sid, staff)
    try:
        await wait_until(lambda: media.stats().frames_received > 120, within=15)
    finally:
        await first.close()
    # The phone comes back (new network, new RTP timeline starting at a random timestamp).
    second = await _publish(api, sid, staff)
    try:
        before = media.stats().frames_received
        await wait_until(lambda: media.stats().frames_received > before + 120, within=15)
    finally:
        await second.close()
    assert (await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))).status == 200
    tracks = await (
        await api.client.get(f"/api/v1/sessions/{sid}/recordings", headers=api.auth(api.officer))
    ).json()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for track in tracks:
        by_kind.setdefault(track["kind"], []).append(track)
    for kind, parts in by_kind.items():
        # One folder per publisher stream, both sealed, the second after the first on one clock.
        assert len(parts) == 2, (kind, [p["track_id"] for p in parts])
        parts.sort(key=lambda t: t["track_id"])
        assert all(p["sealed"] and p["segments"] for p in parts)
        first_end = parts[0]["segments"][-1]["media_end_us"]
        second_start = parts[1]["segments"][0]["media_start_us"]
        assert 0 < second_start - first_end < 10_000_000, (kind, first_end, second_start)
        assert sum(len(p["segments"]) for p in parts) >= 4
    check = subprocess.run(
        [BIN, "verify-recording", str(config.data_path / "recordings" / sid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
