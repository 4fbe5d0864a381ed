"""The inspection in the browser: the officer's console ticks the checklist and lists codes as a real
aiortc staff publisher shows them (generated 1280x720 VP8 with checklist codes and an unknown one),
takes a still into the gallery, downloads the sealed report after the end; and the staff's phone
page, in Chromium with a dark camera picture, shows the server's "more light" hint as a banner."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from rtc_server.appkeys import SERVICES
from tests.analysis.video import FPS, scene
from tests.inspection.media import (
    ITEMS,
    SKU_CODE128,
    SKU_EAN,
    SKU_MISSING,
    SKU_QR,
    UNKNOWN,
    codes_clip,
    staff_publisher,
)
from tests.media.media_clients import answer
from tests.support import PASSWORD
from tests.web.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    OFFICER,
    PHONE,
    ServerFactory,
    Site,
    chromium,
    new_page,
    officer_login,
    problems_of,
    screenshot,
    start_site,
    until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def officer_token(site: Site) -> str:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(site.url + "/api/v1/login", json={"username": OFFICER, "password": PASSWORD})
        assert resp.status == 200
        token: str = (await resp.json())["token"]
        return token


async def create_inspection(site: Site, token: str, items: Sequence[object]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            site.url + "/api/v1/inspections",
            json={"title": "Warehouse 仓库 7", "site": {"name": "Depot 3"}, "items": list(items)},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()
        return created


async def item_state(page: Page, sku: str) -> tuple[bool, int]:
    item = page.locator(f'#checklist li[data-sku="{sku}"]')
    classes = await item.get_attribute("class") or ""
    return "seen" in classes.split(), int(await item.get_attribute("data-count") or 0)


async def both_sizes(page: Page, name: str, focus: str) -> None:
    await page.locator(focus).scroll_into_view_if_needed()
    await screenshot(page, f"{name}-1440x900")
    await page.set_viewport_size(PHONE)
    await asyncio.sleep(0.3)
    await page.locator(focus).scroll_into_view_if_needed()
    await screenshot(page, f"{name}-390x844")
    await page.set_viewport_size(DESKTOP)


async def test_console_ticks_lists_codes_takes_a_still_and_downloads_the_report(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    clip, _shown = await asyncio.to_thread(codes_clip, 1280, 720)
    site = await start_site(aiohttp_server, tmp_path / "data")
    token = await officer_token(site)
    created = await create_inspection(site, token, ITEMS)
    sid, staff = created["id"], created["invites"]["staff"]["token"]

    async with chromium() as browser:
        _, console = await new_page(browser, DESKTOP)
        await officer_login(console, site)
        await console.goto(site.url + f"/#session/{sid}")
        await console.reload()
        await console.locator(f'#checklist li[data-sku="{SKU_QR}"]').wait_for()
        assert await item_state(console, SKU_QR) == (False, 0)
        # No picture yet: a still is refused in plain words; no report before the end.
        await console.get_by_role("button", name="Take still").click()
        await console.locator("#still-message").get_by_text("camera is not live").wait_for()
        assert await console.get_by_role("button", name="Download report").is_hidden()

        pc, _video, offer = await staff_publisher(clip)
        try:
            async with aiohttp.ClientSession() as http:
                resp = await http.post(
                    site.url + f"/api/v1/sessions/{sid}/whip",
                    data=offer,
                    headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {staff}"},
                )
                assert resp.status == 201, await resp.text()
                await answer(pc, await resp.text())

            # The checklist ticks as the server reads the codes, with the sighting count.
            async def ticked() -> bool:
                states = [await item_state(console, sku) for sku in (SKU_QR, SKU_EAN, SKU_CODE128)]
                return all(seen for seen, _ in states)

            await until("the checklist to tick", ticked, timeout=40)
            assert (await item_state(console, SKU_QR))[1] >= 1
            assert await item_state(console, SKU_MISSING) == (False, 0)
            unknown = console.locator(f'#codes li[data-value="{UNKNOWN}"]')
            await unknown.wait_for()
            assert await unknown.get_attribute("data-unexpected") == "true"
            assert "not on the checklist" in await unknown.inner_text()
            assert (
                await console.locator(f'#codes li[data-value="{SKU_QR}"]').get_attribute("data-unexpected")
                == "false"
            )

            await console.get_by_role("button", name="Take still").click()
            figure = console.locator('#stills figure[data-loaded="true"]')
            await figure.wait_for()
            assert await console.locator("#stills figure").count() == 1
            natural = await figure.locator("img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert natural == [1280, 720]
            assert "1280×720" in await figure.inner_text()
            await both_sizes(console, "inspection-console-live", "#codes-panel")
        finally:
            await pc.close()

        await console.get_by_role("button", name="End session").click()
        await console.locator("#confirm-ok").click()
        report_btn = console.get_by_role("button", name="Download report")
        await report_btn.wait_for()
        assert await console.get_by_role("button", name="Take still").is_hidden()
        async with console.expect_download(timeout=60000) as info:
            await report_btn.click()
        download = await info.value
        path = tmp_path / "report.pdf"
        await download.save_as(str(path))
        pdf = path.read_bytes()
        assert pdf.startswith(b"%PDF") and b"/ByteRange" in pdf
        report = await asyncio.to_thread(site.app[SERVICES].signing.validate, pdf)
        assert report.ok, report.to_text()
        # After a reload, the gallery and the codes come back from the server.
        await console.reload()
        await console.locator('#stills figure[data-loaded="true"]').wait_for()
        # Listed once, though both the list and the replayed snapshot.taken event name it.
        assert await console.locator("#stills figure").count() == 1
        assert await console.locator(f'#codes li[data-value="{UNKNOWN}"]').count() >= 1
        await both_sizes(console, "inspection-console-ended", "#report-panel")
        assert problems_of(console) == []


def dark_y4m(path: Path, width: int = 640, height: int = 480, seconds: int = 3) -> Path:
    """A dim room, panning like a hand-held phone's picture, as Chromium's fake camera file."""
    base = scene(width + 64, height, level=0.12)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(seconds * FPS):
            frame = np.ascontiguousarray(base[:, (i // 3) % 64 : (i // 3) % 64 + width])
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


async def test_staff_page_shows_the_quality_hint_as_a_banner(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    video = await asyncio.to_thread(dark_y4m, tmp_path / "dark.y4m")
    site = await start_site(aiohttp_server, tmp_path / "data")
    token = await officer_token(site)
    created = await create_inspection(site, token, ITEMS[:1])
    invite = created["invites"]["staff"]["url"]

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"],
            headless=True,
        )
        try:
            _, phone = await new_page(browser, PHONE)
            await phone.goto(invite)
            await phone.get_by_role("button", name="Join now").click()
            banner = phone.locator("#quality-hint")
            await banner.wait_for(timeout=30000)
            assert await banner.get_attribute("data-hint") == "too_dark"
            assert "More light" in await banner.inner_text()
            await screenshot(phone, "inspection-staff-hint-390x844")
            # The same hint on a phone set to Chinese, in its words.
            _, phone_zh = await new_page(browser, PHONE, locale="zh-CN")
            await phone_zh.goto(invite)
            await phone_zh.get_by_role("button", name="立即加入").click()
            banner_zh = phone_zh.locator("#quality-hint")
            await banner_zh.wait_for(timeout=30000)
            assert "光线太暗" in await banner_zh.inner_text()
            await screenshot(phone_zh, "inspection-staff-hint-zh-390x844")
            await phone.set_viewport_size(DESKTOP)
            await asyncio.sleep(0.3)
            await screenshot(phone, "inspection-staff-hint-1440x900")
            assert problems_of(phone) == [] and problems_of(phone_zh) == []
        finally:
            await browser.close()
