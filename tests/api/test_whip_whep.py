"""WHIP/WHEP over HTTP with real aiortc peers: media flows unchanged, and every documented error."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from rtc_server.appkeys import SERVICES
from tests.media.media_clients import (
    answer,
    is_ordered_subsequence,
    publisher_client,
    viewer_client,
    wait_until,
)
from tests.support import Api, assert_error, make_config, start_api

SDP = {"Content-Type": "application/sdp"}


async def _whip(api: Api, sid: str, token: str, offer: str) -> tuple[int, Mapping[str, str], str]:
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/whip", data=offer, headers={**SDP, **api.auth(token)}
    )
    return resp.status, resp.headers, await resp.text()


async def test_publish_and_watch_forward_frames_unchanged(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    publisher, offer = await publisher_client("VP8", clip_frames=60)
    viewer, viewer_offer = await viewer_client()
    try:
        status, headers, body = await _whip(api, sid, staff, offer)
        assert status == 201, body
        assert headers["Content-Type"].startswith("application/sdp")
        assert re.fullmatch(rf"/api/v1/sessions/{sid}/whip/\S+", headers["Location"])
        assert (
            headers["ETag"].startswith('"') and headers["Accept-Patch"] == "application/trickle-ice-sdpfrag"
        )
        await answer(publisher.pc, body)
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whep", data=viewer_offer, headers={**SDP, **api.auth(api.officer)}
        )
        assert resp.status == 201, await resp.text()
        await answer(viewer.pc, await resp.text())
        frames = await viewer.wait_frames("video", 20, within=15)
        assert publisher.video is not None
        sent = publisher.video.sent
        assert is_ordered_subsequence([f.data for f in frames], sent)
        await viewer.wait_frames("audio", 10, within=10)
        detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
        assert detail["state"] == "live"
        trail = await (
            await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
        ).json()
        types = [e["type"] for e in trail]
        assert "media.published" in types and "session.live" in types and "media.watching" in types
        metrics = await (await api.client.get("/metrics")).text()
        forwarded = re.search(r"^rtc_forwarded_frames_total (\S+)$", metrics, re.M)
        assert forwarded is not None and float(forwarded.group(1)) >= 20
        assert 'rtc_peers{direction="publish"} 1.0' in metrics
        # DELETE ends publishing; the resource is then gone.
        location = headers["Location"]
        resp = await api.client.delete(location, headers=api.auth(staff))
        assert resp.status == 200
        resp = await api.client.delete(location, headers=api.auth(staff))
        assert resp.status == 404
    finally:
        await publisher.close()
        await viewer.close()


async def test_media_input_errors(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/whip", data="v=0", headers={"Content-Type": "text/plain", **api.auth(staff)}
    )
    assert resp.status == 415
    assert_error(await resp.json(), "expected_sdp")
    for garbage in (
        "hello",
        "v=0\r\nthis is not sdp\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
    ):
        status, _, body = await _whip(api, sid, staff, garbage)
        assert status == 400, (garbage, body)
    resp = await api.client.post(f"/api/v1/sessions/{sid}/whip", data="v=0", headers=SDP)
    assert resp.status == 401
    resp = await api.client.post(
        "/api/v1/sessions/ses_nope/whip", data="v=0", headers={**SDP, **api.auth(staff)}
    )
    assert resp.status == 404
    observer = await (
        await api.client.post(
            f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
        )
    ).json()
    publisher, offer = await publisher_client("VP8")
    try:
        status, _, _ = await _whip(api, sid, observer["token"], offer)
        assert status == 403
        other = await api.create_inspection()
        status, _, _ = await _whip(api, sid, other["invites"]["staff"]["token"], offer)
        assert status == 403
        status, _, _ = await _whip(api, sid, api.other_officer, offer)
        assert status == 403
        await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
        status, _, _body = await _whip(api, sid, staff, offer)
        assert status == 409
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whep", data=offer, headers={**SDP, **api.auth(api.officer)}
        )
        assert resp.status == 409
    finally:
        await publisher.close()
    assert (await api.client.get("/healthz")).status == 200


async def test_trickle_patch(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    publisher, offer = await publisher_client("VP8")
    try:
        status, headers, _body = await _whip(api, sid, staff, offer)
        assert status == 201
        location, etag = headers["Location"], headers["ETag"]
        ufrag = re.search(r"a=ice-ufrag:(\S+)", offer).group(1)  # type: ignore[union-attr]
        pwd = re.search(r"a=ice-pwd:(\S+)", offer).group(1)  # type: ignore[union-attr]
        frag = (
            f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
            "a=end-of-candidates\r\n"
        )
        trickle = {"Content-Type": "application/trickle-ice-sdpfrag", **api.auth(staff)}
        resp = await api.client.patch(location, data=frag, headers={**trickle, "If-Match": etag})
        assert resp.status == 204
        assert resp.headers["ETag"] == etag
        resp = await api.client.patch(location, data=frag, headers={**trickle, "If-Match": '"stale"'})
        assert resp.status == 412
        assert_error(await resp.json(), "stale_etag")
        restart = frag.replace(ufrag, "newufrag").replace(pwd, "newpasswordnewpassword00")
        resp = await api.client.patch(location, data=restart, headers={**trickle, "If-Match": "*"})
        assert resp.status == 422
        assert_error(await resp.json(), "ice_restart_unsupported")
        resp = await api.client.patch(
            location, data=frag, headers={**trickle, "Content-Type": "application/sdp"}
        )
        assert resp.status == 415
        resp = await api.client.patch(f"/api/v1/sessions/{sid}/whip/nope", data=frag, headers=trickle)
        assert resp.status == 404
        # A resource belongs to its participant: another session's invite or an observer cannot touch it.
        observer = await (
            await api.client.post(
                f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
            )
        ).json()
        resp = await api.client.delete(location, headers=api.auth(observer["token"]))
        assert resp.status == 403
        resp = await api.client.delete(location, headers=api.auth(api.officer))
        assert resp.status == 200
    finally:
        await publisher.close()


async def test_capacity_answers_503(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    api = await start_api(aiohttp_client, make_config(tmp_path / "d", media={"max_peers": 1}))
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    publisher, offer = await publisher_client("VP8")
    viewer, viewer_offer = await viewer_client()
    try:
        status, _, _ = await _whip(api, sid, staff, offer)
        assert status == 201
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whep", data=viewer_offer, headers={**SDP, **api.auth(api.officer)}
        )
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) > 0
        assert_error(await resp.json(), "at_capacity")
    finally:
        await publisher.close()
        await viewer.close()


async def test_ice_servers_advertised_in_link_headers(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    servers = [
        {"urls": ["stun:stun.bank.example:3478"]},
        {"urls": ["turn:turn.bank.example:3478"], "username": "u1", "credential": "s3cret"},
    ]
    api = await start_api(aiohttp_client, make_config(tmp_path / "d", media={"ice_servers": servers}))
    created = await api.create_inspection()
    publisher, offer = await publisher_client("VP8")
    try:
        resp = await api.client.post(
            f"/api/v1/sessions/{created['id']}/whip",
            data=offer,
            headers={**SDP, **api.auth(created["invites"]["staff"]["token"])},
        )
        assert resp.status == 201
        links = resp.headers.getall("Link")
        assert '<stun:stun.bank.example:3478>; rel="ice-server"' in links
        assert any(
            link.startswith("<turn:turn.bank.example:3478>")
            and 'username="u1"' in link
            and 'credential="s3cret"' in link
            for link in links
        )
    finally:
        await publisher.close()


@pytest.mark.slow
async def test_end_session_closes_media(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    publisher, offer = await publisher_client("VP8", clip_frames=60)
    try:
        status, _, body = await _whip(api, sid, staff, offer)
        assert status == 201
        await answer(publisher.pc, body)
        media = api.app[SERVICES].media
        await wait_until(lambda: media.stats().frames_received > 5, within=10)
        resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
        assert resp.status == 200
        assert media.peer_count == 0
        await asyncio.sleep(0.2)
        assert publisher.pc.connectionState in ("closed", "failed", "connected")
    finally:
        await publisher.close()


async def test_offer_arriving_in_pieces_is_read_whole(api: Api) -> None:
    # On a slow mobile link the offer's second TCP segment comes later: the server must wait for it.
    created = await api.create_inspection()
    publisher, offer = await publisher_client("VP8")

    async def slowly() -> AsyncIterator[bytes]:
        data = offer.encode()
        yield data[: len(data) // 2]
        await asyncio.sleep(0.3)
        yield data[len(data) // 2 :]

    try:
        resp = await api.client.post(
            f"/api/v1/sessions/{created['id']}/whip",
            data=slowly(),
            headers={**SDP, **api.auth(created["invites"]["staff"]["token"])},
        )
        assert resp.status == 201, await resp.text()
    finally:
        await publisher.close()
