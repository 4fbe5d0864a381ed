"""A real call in Chromium through the server: the officer's console and the staff's phone page see
and hear each other, the phone comes back after a reload, and its location lands in the audit trail.
Prints the time from tapping "Join now" to the officer's first decoded frame (median of five)."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocketRoute

from rtc_server.appkeys import SERVICES
from tests.web.browser import (
    DESKTOP,
    PHONE,
    RECORD_CAMERA_REQUESTS,
    ServerFactory,
    chromium,
    create_inspection,
    new_page,
    officer_login,
    problems_of,
    requested_urls,
    restart_site,
    screenshot,
    start_site,
    until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOCATION = {"latitude": 31.2304, "longitude": 121.4737, "accuracy": 25}


async def officer_tile(page: Page, participant_id: str) -> dict[str, Any] | None:
    tiles: list[dict[str, Any]] = await page.evaluate("window.__rtc.snapshot()")
    return next((t for t in tiles if t["participantId"] == participant_id), None)


async def phone_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("window.__rtc.snapshot()")
    return state


async def now_ms(page: Page) -> float:
    value: float = await page.evaluate("Date.now()")
    return value


async def assert_officer_receives(page: Page, participant_id: str, since: float = 0) -> dict[str, Any]:
    """Video decoding and audio arriving on the tile, from a subscription whose first frame came
    after `since` (so a picture left over from before a reconnect does not count)."""

    async def decoding() -> dict[str, Any] | None:
        tile = await officer_tile(page, participant_id)
        fresh = tile is not None and (tile["firstFrameAt"] or 0) >= since
        return tile if tile and fresh and tile["videoWidth"] > 0 and tile["framesDecoded"] > 0 else None

    first = await until("the officer to decode the staff's video", decoding)
    await asyncio.sleep(1.0)
    later = await officer_tile(page, participant_id)
    assert later is not None
    assert later["framesDecoded"] > first["framesDecoded"], (first, later)
    assert later["audioBytes"] > first["audioBytes"] > 0, (first, later)
    return later


async def assert_phone_receives(page: Page) -> dict[str, Any]:
    async def decoding() -> dict[str, Any] | None:
        remote = (await phone_state(page))["remote"]
        return remote if remote and remote["videoWidth"] > 0 and remote["framesDecoded"] > 0 else None

    first = await until("the phone to decode the officer's video", decoding)
    await asyncio.sleep(1.0)
    later = (await phone_state(page))["remote"]
    assert later["framesDecoded"] > first["framesDecoded"], (first, later)
    assert later["audioBytes"] > first["audioBytes"] > 0, (first, later)
    return dict(later)


async def test_officer_and_staff_see_and_hear_each_other(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    # FEC (the default) and transport-cc (off by default) on: the phone's video arrives wrapped in
    # RED and must still play, and the phone gets congestion feedback.
    media = {"publisher_fec": True, "publisher_transport_cc": True}
    site = await start_site(aiohttp_server, tmp_path / "data", media=media)
    async with chromium() as browser:
        officer_context, officer = await new_page(browser, DESKTOP)
        await officer_login(officer, site)
        invite = await create_inspection(officer, "Cold store 2", [("SKU-1", "Frozen fish", "4")])
        await officer.get_by_role("button", name="Start camera and microphone").click()
        await officer.get_by_role("button", name="Mute").wait_for()

        context, phone = await new_page(
            browser,
            PHONE,
            is_mobile=True,
            has_touch=True,
            permissions=["geolocation"],
            geolocation=LOCATION,
        )
        await context.add_init_script(RECORD_CAMERA_REQUESTS)
        await phone.goto(invite)
        await phone.get_by_role("button", name="Join now").click()
        await until("the phone to publish", lambda: _publishing(phone))
        staff_id = (await phone_state(phone))["participantId"]
        # Staff start on the rear camera, to show the goods.
        first_request = (await phone.evaluate("window.__gum"))[0]
        assert first_request["video"]["facingMode"] == {"ideal": "environment"}
        assert first_request["audio"] is True

        await assert_officer_receives(officer, staff_id)
        await assert_phone_receives(phone)
        # The phone's video came wrapped in RED with ULPFEC offered: the officer's picture above came
        # through the unwrap.
        assert (await phone_state(phone))["videoFec"] is True
        counters = site.app[SERVICES].media.counters
        assert counters.red_packets > 100
        # The phone stamps transport-wide numbers and its bandwidth estimator gets our feedback.
        assert counters.transport_feedbacks > 10
        await officer.locator("#session-state").get_by_text("Live").wait_for()
        # The granted location reached the audit trail, and the officer's timeline as it happened.
        await officer.locator("#timeline li[data-type='participant.location']").wait_for()
        await until("the quality readout", lambda: _readout(officer, staff_id))
        await screenshot(officer, "console-call-1440x900")
        await screenshot(phone, "join-call-390x844")

        # A reload (or a crashed tab) puts the phone straight back into the session.
        since = await now_ms(officer)
        await phone.reload()
        await until("the phone to publish again", lambda: _publishing(phone))
        assert "rtci_" not in phone.url
        await assert_officer_receives(officer, staff_id, since)
        await assert_phone_receives(phone)

        # A network loss: the page says so, then comes back by itself and publishes again.
        since = await now_ms(officer)
        await context.set_offline(True)
        status = phone.locator("#status")
        await status.get_by_text("offline").wait_for()
        await screenshot(phone, "join-offline-390x844")
        await context.set_offline(False)
        await until("the phone to publish after the network loss", lambda: _publishing(phone))
        await status.wait_for(state="hidden")
        await assert_officer_receives(officer, staff_id, since)
        await assert_phone_receives(phone)

        # Mute and camera toggles change the officer's own tracks.
        await officer.get_by_role("button", name="Mute").click()
        await officer.get_by_role("button", name="Unmute").wait_for()
        await officer.get_by_role("button", name="Turn camera off").click()
        assert (
            await officer.evaluate(
                "window.__rtc.session.localStream.getTracks()"
                ".map(t => t.kind + ':' + t.enabled).sort().join()"
            )
            == "audio:false,video:false"
        )
        # The switch button asks for the front camera and keeps publishing.
        await phone.get_by_role("button", name="Switch").click()
        await until("a second camera request", lambda: phone.evaluate("window.__gum.length >= 2"))
        assert (await phone.evaluate("window.__gum[1]"))["video"]["facingMode"] == {"exact": "user"}
        await assert_officer_receives(officer, staff_id)

        # No token was ever part of a URL the browsers requested (so none in logs or Referer).
        officer_token = await officer.evaluate("sessionStorage.getItem('rtc.officer.token')")
        urls = requested_urls(context) + requested_urls(officer_context)
        assert any("/ws" in u for u in urls) and any("/join/" in u for u in urls)
        assert not [u for u in urls if "rtci_" in u or officer_token in u]

        # Ending the session ends it on the phone too.
        await officer.get_by_role("button", name="End session").click()
        await officer.locator("#confirm-dialog").get_by_role("button", name="End session").click()
        await phone.get_by_role("heading", name="The session has ended").wait_for()
        await officer.locator("#session-state").get_by_text("Ended").wait_for()
        assert problems_of(officer) == [] and problems_of(phone) == []
        await context.close()


async def _publishing(page: Page) -> bool:
    return bool((await phone_state(page))["publishing"])


async def _readout(page: Page, participant_id: str) -> bool:
    tile = page.locator(f".tile[data-participant-id='{participant_id}'] .tile-stats dd")
    texts = await tile.all_inner_texts()
    return len(texts) == 4 and all(t != "–" for t in texts[2:])  # bitrate and frame rate


async def test_time_from_join_to_first_frame(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    async with chromium() as browser:
        _, officer = await new_page(browser, DESKTOP)
        await officer_login(officer, site)
        invite = await create_inspection(officer, "Timing", [("SKU-1", "", "")])
        context, _ = await new_page(browser, PHONE, is_mobile=True, has_touch=True)
        figures: list[float] = []
        phases: list[tuple[float, float]] = []
        for _round in range(5):
            phone = await context.new_page()
            await phone.goto(invite)
            await phone.get_by_role("button", name="Join now").click()
            await until("the phone to publish", lambda: _publishing(phone))  # noqa: B023
            state = await phone_state(phone)
            staff_id, clicked = state["participantId"], state["joinClickedAt"]

            async def first_frame() -> float | None:
                tile = await officer_tile(officer, staff_id)  # noqa: B023
                at = tile and tile["firstFrameAt"]
                return at if at and at >= clicked else None  # noqa: B023

            first = await until("the officer's first frame", first_frame)
            figures.append(first - clicked)
            published = (await phone_state(phone))["publishedAt"]
            phases.append((published - clicked, first - published))
            await phone.close()

            async def gone() -> bool:
                tile = await officer_tile(officer, staff_id)  # noqa: B023
                return tile is not None and not tile["online"]

            await until("the officer to see the phone leave", gone)
        median = statistics.median(figures)
        publish = statistics.median(p[0] for p in phases)
        view = statistics.median(p[1] for p in phases)
        print(
            f"\njoin tap -> officer's first decoded frame: median {median:.0f} ms of {sorted(figures)}"
            f"\n  tap -> phone's publisher connected: median {publish:.0f} ms;"
            f" then -> officer's first frame: median {view:.0f} ms"
        )
        assert all(f > 0 for f in figures)


async def test_phone_comes_back_after_a_server_restart(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    async with chromium() as browser:
        _, officer = await new_page(browser, DESKTOP)
        await officer_login(officer, site)
        invite = await create_inspection(officer, "Restart", [("SKU-1", "", "")])
        _, phone = await new_page(browser, PHONE, is_mobile=True, has_touch=True)
        await phone.goto(invite)
        await phone.get_by_role("button", name="Join now").click()
        await until("the phone to publish", lambda: _publishing(phone))
        staff_id = (await phone_state(phone))["participantId"]
        await assert_officer_receives(officer, staff_id)

        since = await now_ms(officer)
        restart = asyncio.create_task(restart_site(aiohttp_server, site, down_s=1.5))
        # While the server is away the page says it is reconnecting; it comes back without a tap.
        await phone.locator("#status").get_by_text("Reconnecting").wait_for(timeout=60000)
        site = await restart
        await phone.locator("#status").wait_for(state="hidden", timeout=20000)
        await until("the phone to publish again", lambda: _publishing(phone))
        await officer.locator("#session-conn").get_by_text("Connected").wait_for(timeout=20000)
        await assert_officer_receives(officer, staff_id, since)
        assert problems_of(phone) == []


async def test_a_silent_dead_link_is_noticed_and_replaced(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    """The network dies without the browser noticing (no offline event, no closed socket): the
    unanswered ping gives it away, and the phone reconnects and publishes again by itself."""
    site = await start_site(aiohttp_server, tmp_path / "data")
    async with chromium() as browser:
        _, officer = await new_page(browser, DESKTOP)
        await officer_login(officer, site)
        invite = await create_inspection(officer, "Dead link", [("SKU-1", "", "")])
        _, phone = await new_page(browser, PHONE, is_mobile=True, has_touch=True)
        sockets: list[WebSocketRoute] = []
        dead: dict[str, WebSocketRoute | None] = {"socket": None}

        def relay(route: WebSocketRoute) -> None:
            server = route.connect_to_server()
            sockets.append(route)
            route.on_message(lambda m: server.send(m) if dead["socket"] is not route else None)
            server.on_message(lambda m: route.send(m) if dead["socket"] is not route else None)

        await phone.route_web_socket("**/ws", relay)
        await phone.goto(invite)
        await phone.get_by_role("button", name="Join now").click()
        await until("the phone to publish", lambda: _publishing(phone))
        staff_id = (await phone_state(phone))["participantId"]
        since = await now_ms(officer)
        dead["socket"] = sockets[-1]  # from now on nothing passes either way on this socket
        started = time.monotonic()
        await until("a second socket", lambda: _more_than(sockets, 1), timeout=30)
        noticed = time.monotonic() - started
        await until("the phone to publish again", lambda: _publishing(phone))
        await assert_officer_receives(officer, staff_id, since)
        print(f"\ndead signaling link noticed and replaced after {noticed:.1f} s")
        assert noticed < 20


async def _more_than(items: list[Any], n: int) -> bool:
    return len(items) > n
