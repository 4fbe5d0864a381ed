"""The signaling socket: hello, presence, publish/subscribe with real aiortc peers, and bad messages."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from rtc_server import signaling
from tests.media.media_clients import answer, is_ordered_subsequence, publisher_client, viewer_client
from tests.support import Api


async def _connect(api: Api, sid: str, token: str) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await api.client.ws_connect(f"/api/v1/sessions/{sid}/ws")
    await ws.send_json({"type": "hello", "token": token, "device": {"ua": "test"}})
    welcome = await ws.receive_json(timeout=5)
    return ws, welcome


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 10) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            msg: dict[str, Any] = await ws.receive_json()
            if msg["type"] == kind:
                return msg

    return await asyncio.wait_for(wait(), timeout)


async def test_hello_is_required_and_checked(api: Api) -> None:
    created = await api.create_inspection()
    other = await api.create_inspection()
    sid = created["id"]
    cases = [
        ({"type": "ping"}, "hello_expected"),
        ({"type": "hello", "token": "rtci_bogus"}, "invalid_token"),
        ({"type": "hello", "token": other["invites"]["staff"]["token"]}, "forbidden"),
        ({"type": "hello", "token": api.other_officer}, "forbidden"),
        ({"type": "hello"}, "invalid_message"),
    ]
    for first, code in cases:
        ws = await api.client.ws_connect(f"/api/v1/sessions/{sid}/ws")
        await ws.send_json(first)
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error" and reply["code"] == code, (first, reply)
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_welcome_presence_location_and_bad_messages(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff_token = created["id"], created["invites"]["staff"]["token"]
    officer_ws, welcome = await _connect(api, sid, api.officer)
    assert welcome["type"] == "welcome" and welcome["role"] == "officer"
    assert welcome["session"]["id"] == sid and welcome["ice_servers"] == []
    staff_ws, staff_welcome = await _connect(api, sid, staff_token)
    assert staff_welcome["role"] == "staff"
    roster = {p["role"]: p for p in staff_welcome["participants"]}
    assert roster["officer"]["online"] and roster["staff"]["online"]
    presence = await _next(officer_ws, "presence")
    assert presence["participant"]["role"] == "staff" and presence["participant"]["online"]

    for bad, code in [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "subscribe", "ref": "r1", "participant_id": "p"}', "invalid_message"),
        ('{"type": "location", "latitude": 200, "longitude": 1}', "invalid_message"),
        ('{"type": "location", "latitude": "north", "longitude": 1}', "invalid_message"),
        ('{"type": "unsubscribe", "resource_id": "nope"}', "unknown_resource"),
        ('{"type": "hello", "token": "x"}', "already_joined"),
        ('{"type": "publish", "sdp": "v=0 garbage"}', "invalid_sdp"),
    ]:
        await staff_ws.send_str(bad)
        reply = await _next(staff_ws, "error")
        assert reply["code"] == code, (bad, reply)
    await staff_ws.send_bytes(b"\x00\x01")
    assert (await _next(staff_ws, "error"))["code"] == "invalid_message"
    await staff_ws.send_json({"type": "ping"})
    assert (await _next(staff_ws, "pong"))["type"] == "pong"  # still connected after all that

    await staff_ws.send_json({"type": "location", "latitude": 31.2304, "longitude": 121.4737, "accuracy": 12})
    await _next(staff_ws, "location_saved")
    event = await _next(officer_ws, "event")
    while event["event"]["type"] != "participant.location":
        event = await _next(officer_ws, "event")
    assert event["event"]["data"]["latitude"] == 31.2304
    # Observers are told about state, not the trail.
    await staff_ws.close()
    left = await _next(officer_ws, "presence")
    assert left["participant"]["role"] == "staff" and not left["participant"]["online"]
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    ended = await _next(officer_ws, "session")
    assert ended["state"] == "ended"
    await officer_ws.close()
    trail = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    types = [e["type"] for e in trail]
    assert types.count("participant.joined") == 2 and "participant.left" in types
    joined = next(e for e in trail if e["type"] == "participant.joined" and e["data"]["role"] == "staff")
    assert joined["data"]["device"] == {"ua": "test"}


@pytest.mark.slow
async def test_publish_and_subscribe_over_the_socket(api: Api) -> None:
    created = await api.create_inspection()
    sid, staff_token = created["id"], created["invites"]["staff"]["token"]
    staff_ws, staff_welcome = await _connect(api, sid, staff_token)
    officer_ws, _ = await _connect(api, sid, api.officer)
    publisher, offer = await publisher_client("VP8", clip_frames=60)
    viewer, viewer_offer = await viewer_client()
    try:
        await staff_ws.send_json({"type": "publish", "sdp": offer})
        published = await _next(staff_ws, "published")
        await answer(publisher.pc, published["sdp"])
        presence = await _next(officer_ws, "presence")
        while not presence["participant"]["publishing"]:
            presence = await _next(officer_ws, "presence")
        assert presence["participant"]["id"] == staff_welcome["participant_id"]
        await officer_ws.send_json(
            {
                "type": "subscribe",
                "ref": "tile-1",
                "participant_id": presence["participant"]["id"],
                "sdp": viewer_offer,
            }
        )
        subscribed = await _next(officer_ws, "subscribed")
        assert subscribed["ref"] == "tile-1"
        await answer(viewer.pc, subscribed["sdp"])
        frames = await viewer.wait_frames("video", 15, within=15)
        assert publisher.video is not None
        assert is_ordered_subsequence([f.data for f in frames], publisher.video.sent)
        detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
        assert detail["state"] == "live"
        await officer_ws.send_json({"type": "unsubscribe", "resource_id": subscribed["resource_id"]})
        assert (await _next(officer_ws, "unsubscribed"))["resource_id"] == subscribed["resource_id"]
        # Closing the socket releases the publisher too.
        await staff_ws.close()
        gone = await _next(officer_ws, "presence")
        while gone["participant"]["publishing"] or gone["participant"]["online"]:
            gone = await _next(officer_ws, "presence")
    finally:
        await publisher.close()
        await viewer.close()
        await officer_ws.close()


def test_parse_rejects_oversized_and_accepts_valid() -> None:
    with pytest.raises(signaling.SignalingError) as info:
        signaling.parse("x" * (signaling.MAX_MESSAGE_BYTES + 1))
    assert info.value.code == "message_too_large"
    assert signaling.parse('{"type": "location", "latitude": 1, "longitude": 2}') == signaling.Location(
        1.0, 2.0, None
    )
    with pytest.raises(signaling.SignalingError):
        signaling.parse('{"type": "location", "latitude": true, "longitude": 2}')
    with pytest.raises(signaling.SignalingError):
        signaling.parse('{"type": "location", "latitude": NaN, "longitude": 2}')
