"""The inspection calls refuse what they must (no media needed), and a report without any media
still says what was expected and not seen."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient

from rtc_server.accounts import Principal
from rtc_server.analysis import AnalyserSettings, AnalyserStats
from rtc_server.appkeys import SERVICES
from rtc_server.models import Participant, ParticipantRole
from tests.analysis.video import to_encoded_frames
from tests.inspection.media import dark_clip
from tests.media.media_clients import wait_until
from tests.support import Api, assert_error, make_config, start_api


async def test_snapshot_refusals(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]
    url = f"/api/v1/inspections/{sid}/snapshots"
    resp = await api.client.post(url)
    assert resp.status == 401
    for token in (api.other_officer, staff["token"]):
        resp = await api.client.post(url, headers=api.auth(token))
        assert resp.status == 403, token
        assert_error(await resp.json())
    resp = await api.client.post("/api/v1/inspections/ses_nope/snapshots", headers=api.auth(api.officer))
    assert resp.status == 404
    assert_error(await resp.json(), "session_not_found")
    signing = await api.create_signing()
    resp = await api.client.post(
        f"/api/v1/inspections/{signing['id']}/snapshots", headers=api.auth(api.officer)
    )
    assert resp.status == 404
    assert_error(await resp.json(), "not_an_inspection")
    resp = await api.client.post(url, headers=api.auth(api.officer))
    assert resp.status == 409
    assert_error(await resp.json(), "staff_not_publishing")
    resp = await api.client.get(f"{url}/stl_unknown", headers=api.auth(api.officer))
    assert resp.status == 404
    assert_error(await resp.json(), "still_not_found")
    resp = await api.client.get(url, headers=api.auth(api.officer))
    assert resp.status == 200 and await resp.json() == {"stills": []}
    detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
    assert detail["stills"] == []
    detail = await (
        await api.client.get(f"/api/v1/sessions/{signing['id']}", headers=api.auth(api.officer))
    ).json()
    assert "stills" not in detail
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    resp = await api.client.post(url, headers=api.auth(api.officer))
    assert resp.status == 409
    assert_error(await resp.json(), "session_ended")


async def test_only_the_staff_video_of_an_inspection_is_analysed(api: Api) -> None:
    services = api.app[SERVICES]
    inspection = await api.create_inspection()
    signing = await api.create_signing()
    async with services.repo.read() as tx:
        sessions = {s: await tx.session(s) for s in (inspection["id"], signing["id"])}
    staff_id = inspection["invites"]["staff"]["participant_id"]
    for sid, role, pid in (
        (signing["id"], ParticipantRole.SIGNER, signing["invites"]["signer"]["participant_id"]),
        (inspection["id"], ParticipantRole.OFFICER, "par_officer"),
        (inspection["id"], ParticipantRole.OBSERVER, "par_observer"),
    ):
        session = sessions[sid]
        assert session is not None
        services.inspection.published(session, Participant(pid, sid, role, "x", 0.0))
        assert services.inspection.analysed(sid) == []
    session = sessions[inspection["id"]]
    assert session is not None
    staff = Participant(staff_id, inspection["id"], ParticipantRole.STAFF, "Staff", 0.0)
    services.inspection.published(session, staff)
    services.inspection.published(session, staff)  # a reconnect: still one analysis
    assert services.inspection.analysed(inspection["id"]) == [staff_id]
    await services.conference.end(await _officer(api), inspection["id"])
    assert services.inspection.analysed(inspection["id"]) == []


async def _officer(api: Api) -> Principal:
    return await api.app[SERVICES].accounts.authenticate(api.officer)


async def test_report_refusals_and_a_report_without_media(api: Api, tmp_path: Path) -> None:
    created = await api.create_inspection(
        title="Site 工地 3", items=[{"sku": "SKU-1", "description": "钢材", "expected_qty": 4}]
    )
    sid = created["id"]
    url = f"/api/v1/inspections/{sid}/report"
    resp = await api.client.get(url, headers=api.auth(api.officer))
    assert resp.status == 409
    assert_error(await resp.json(), "session_not_ended")
    resp = await api.client.get(url, headers=api.auth(created["invites"]["staff"]["token"]))
    assert resp.status == 403
    signing = await api.create_signing()
    resp = await api.client.get(f"/api/v1/inspections/{signing['id']}/report", headers=api.auth(api.officer))
    assert resp.status == 404
    assert_error(await resp.json(), "not_an_inspection")
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    resp = await api.client.get(url, headers=api.auth(api.other_officer))
    assert resp.status == 403

    # Two officers' clicks at once: one report, issued once.
    first, second = await asyncio.gather(
        api.client.get(url, headers=api.auth(api.officer)), api.client.get(url, headers=api.auth(api.admin))
    )
    assert first.status == second.status == 200
    pdf = await first.read()
    assert await second.read() == pdf
    report = await asyncio.to_thread(api.app[SERVICES].signing.validate, pdf)
    assert report.ok, report.to_text()
    events = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    assert [e["type"] for e in events].count("report.issued") == 1
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=60).stdout
    for needle in (
        "工地",
        "钢材",
        "SKU-1",
        "MISSING",
        "0 of 1 item(s) seen",
        "No code was read.",
        "No still was taken.",
    ):
        assert needle in text, needle
    assert "Nothing was recorded." in text and "The inspection ended" in text


async def test_dead_tsa_issues_no_report(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback: connection refused at once.
    config = make_config(
        tmp_path / "data", signing={"tsa": {"url": "http://127.0.0.1:9/tsa", "timeout_s": 2}}
    )
    api = await start_api(aiohttp_client, config)
    sid = (await api.create_inspection())["id"]
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    resp = await api.client.get(f"/api/v1/inspections/{sid}/report", headers=api.auth(api.officer))
    assert resp.status == 502, await resp.text()
    assert_error(await resp.json(), "timestamp_failed")
    detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
    assert detail["documents"] == []
    events = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    failed = [e for e in events if e["type"] == "report.failed"]
    assert len(failed) == 1 and failed[0]["data"]["reason"] == "timestamp_authority"
    assert not any(e["type"] == "report.issued" for e in events)


async def test_frames_lost_by_the_tap_make_the_analyser_wait_for_a_keyframe(api: Api) -> None:
    services = api.app[SERVICES]
    created = await api.create_inspection()
    sid, staff_id = created["id"], created["invites"]["staff"]["participant_id"]
    async with services.repo.read() as tx:
        session = await tx.session(sid)
    assert session is not None
    # Room for every frame in the analyser's own queue: any resync comes from the tap's losses.
    services.inspection.settings = AnalyserSettings(queue_frames=1000, backlog_high=1000)
    services.inspection.published(session, Participant(staff_id, sid, ParticipantRole.STAFF, "Staff", 0.0))
    clip = await asyncio.to_thread(dark_clip)
    deltas = [p for p, key in zip(clip.frames, clip.keyframes, strict=True) if not key]
    frames = to_encoded_frames([clip.frames[0], *deltas[:4], *(deltas * 2)[:150]])
    # The media engine's side of the tap: a keyframe and a few frames, taken by the analyser...
    slot = services.media._sessions[sid].slots[(staff_id, "video")]
    for frame in frames[:5]:
        for tap in slot.taps:
            tap.put(frame)
    await wait_until(
        lambda: (services.inspection.stats(sid, staff_id) or AnalyserStats()).frames_decoded >= 5
    )
    # ...then a burst larger than the tap holds (a stalled loop): the oldest frames are lost.
    for frame in frames[5:]:
        for tap in slot.taps:
            tap.put(frame)

    def resynchronising() -> bool:
        stats = services.inspection.stats(sid, staff_id)
        return stats is not None and stats.frames_skipped >= 100 and stats.keyframe_requests >= 1

    await wait_until(resynchronising, within=10)
    stats = services.inspection.stats(sid, staff_id)
    assert stats is not None and stats.frames_decoded == 5 and stats.decode_errors == 0
    assert stats.frames_dropped == 0 and sum(t.dropped for t in slot.taps) == 30
    await services.conference.end(await _officer(api), sid)
