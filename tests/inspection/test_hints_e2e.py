"""Quality hints reach the staff's phone: a dark picture over WHIP turns "too_dark" on, on the staff's
own signaling socket (and only there), and in the trail; an observer's socket hears no hint."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse

from rtc_server.analysis import HINT_MESSAGES
from tests.inspection.media import dark_clip, staff_publisher
from tests.media.media_clients import answer
from tests.support import Api

pytestmark = pytest.mark.slow

SDP = {"Content-Type": "application/sdp"}


async def joined(api: Api, sid: str, token: str) -> ClientWebSocketResponse:
    ws = await api.client.ws_connect(f"/api/v1/sessions/{sid}/ws")
    await ws.send_json({"type": "hello", "token": token})
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    return ws


async def next_of_type(ws: ClientWebSocketResponse, kind: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] == kind:
            return message


async def test_dark_picture_hint_reaches_the_staff_socket(api: Api) -> None:
    clip = await asyncio.to_thread(dark_clip)
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    observer_token = (await resp.json())["token"]
    staff_ws = await joined(api, sid, staff["token"])
    observer_ws = await joined(api, sid, observer_token)
    pc, _video, offer = await staff_publisher(clip)
    try:
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whip", data=offer, headers={**SDP, **api.auth(staff["token"])}
        )
        assert resp.status == 201, await resp.text()
        await answer(pc, await resp.text())
        hint = await next_of_type(staff_ws, "hint", within=20)
        assert hint == {
            "type": "hint",
            "hint": "too_dark",
            "active": True,
            "message": HINT_MESSAGES["too_dark"],
        }
        assert "光线" in hint["message"]["zh"] and "light" in hint["message"]["en"]
        # A reloaded page is told at once about a hint that is still on.
        again = await joined(api, sid, staff["token"])
        assert (await next_of_type(again, "hint", within=5)) == hint
        await again.close()
    finally:
        await pc.close()
    # The observer's socket saw presence changes only, never a hint.
    seen: list[str] = []
    while True:
        try:
            seen.append((await observer_ws.receive_json(timeout=0.3))["type"])
        except TimeoutError:
            break
    assert "hint" not in seen and "presence" in seen
    await staff_ws.close()
    await observer_ws.close()

    resp = await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    hints = [e for e in await resp.json() if e["type"] == "quality.hint"]
    assert hints[0]["data"]["hint"] == "too_dark" and hints[0]["data"]["active"] is True
    assert hints[0]["data"]["participant_id"] == staff["participant_id"]
    assert hints[0]["data"]["message"] == HINT_MESSAGES["too_dark"]
    assert hints[0]["data"]["media_time"] >= 1.0  # held for a second before it fires
    # A dark, moving picture is only dark: not blurred, frozen or covered.
    assert {e["data"]["hint"] for e in hints} == {"too_dark"}
