"""The pages in a real browser, without media between peers: sign in, create, invite, QR, refusals."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page

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
    screenshot,
    start_site,
    until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NO_CAMERA = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
"""

# Rejects getUserMedia as a browser does when the user taps "Block".
DENY_CAMERA = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
"""


async def test_officer_creates_an_inspection_and_gets_a_scannable_invite(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    async with chromium() as browser:
        _, page = await new_page(browser, DESKTOP, permissions=["clipboard-read", "clipboard-write"])
        await page.goto(site.url + "/")
        await page.get_by_label("Username").fill("officer1")
        await page.get_by_label("Password").fill("wrong password here")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("alert").get_by_text("not correct").wait_for()
        await screenshot(page, "console-login-1440x900")
        await officer_login(page, site)
        await screenshot(page, "console-welcome-1440x900")
        # A stale link to a session that does not exist says so and keeps the officer signed in.
        await page.goto(site.url + "/#session/ses_doesnotexist")
        await page.reload()  # a fragment change alone does not load the page again
        await page.get_by_role("alert").get_by_text("No such session").wait_for()
        assert await page.get_by_role("button", name="Sign out").is_visible()

        invite = await create_inspection(
            page, "Warehouse 7 stock check", [("SKU-1", "Pallet of rice", "2"), ("6901234567892", "Oil", "")]
        )
        parts = urlsplit(invite)
        assert f"{parts.scheme}://{parts.netloc}" == site.url
        assert parts.path.startswith("/join/") and parts.fragment.startswith("rtci_")
        assert await page.locator("#session-state").inner_text() == "Waiting"
        # The checklist panel shows the items as entered; the signing panel stays hidden.
        items = await page.locator("#checklist li").all_inner_texts()
        assert len(items) == 2
        assert "SKU-1" in items[0] and "Pallet of rice" in items[0] and "2" in items[0]
        assert "6901234567892" in items[1] and "Oil" in items[1]
        assert await page.locator("#signing-steps-panel").is_hidden()
        # The QR code is drawn locally, large enough to scan (module count of a ~100 char URL).
        modules = int(await page.locator("#invite-qr").get_attribute("data-modules") or 0)
        assert modules >= 25
        box = await page.locator("#invite-qr").bounding_box()
        assert box is not None and box["width"] >= 180
        await page.get_by_role("button", name="Copy").click()
        await page.get_by_role("status").get_by_text("Link copied.").wait_for()
        assert await page.evaluate("navigator.clipboard.readText()") == invite
        # The timeline shows the creation from the audit trail.
        await page.locator("#timeline li[data-type='session.created']").wait_for()
        # The sessions list has it, with its state.
        item = page.locator("#session-list .session-item.current")
        assert "Warehouse 7 stock check" in await item.inner_text()
        assert "Waiting" in await item.inner_text()
        await screenshot(page, "console-inspection-1440x900")

        # A new invite replaces the shown one; a reload keeps the officer signed in (this tab only).
        await page.get_by_role("button", name="New invite link").click()
        await until("a new invite", lambda: _changed(page, invite))
        await page.reload()
        await page.locator("#session-title").get_by_text("Warehouse 7 stock check").wait_for()

        # Ending asks first, then the state and the timeline follow.
        await page.get_by_role("button", name="End session").click()
        await page.locator("#confirm-dialog").get_by_role("button", name="End session").click()
        await page.locator("#session-state").get_by_text("Ended").wait_for()
        await page.locator("#timeline li[data-type='session.ended']").wait_for()
        assert problems_of(page) == []


async def test_officer_creates_a_signing_with_a_pdf(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    from tests.support import make_pdf

    site = await start_site(aiohttp_server, tmp_path / "data")
    pdf = tmp_path / "loan.pdf"
    pdf.write_bytes(make_pdf())
    async with chromium() as browser:
        _, page = await new_page(browser, DESKTOP)
        await officer_login(page, site)
        await page.get_by_role("button", name="New signing").click()
        await page.get_by_role("button", name="Create signing").click()
        await page.get_by_role("alert").get_by_text("PDF").wait_for()
        await page.get_by_label("Title (optional)").fill("Mortgage 2291")
        await page.get_by_label("Contract (PDF)").set_input_files(str(pdf))
        await page.get_by_label("Full name").fill("Li Wei")
        await page.get_by_label("Email").fill("li.wei@example.com")
        await page.get_by_role("button", name="Create signing").click()
        await page.locator("#session-title").get_by_text("Mortgage 2291").wait_for()
        assert "/join/" in await page.locator("#invite-url").input_value()
        assert await page.locator("#signing-steps li").count() == 3
        assert await page.locator("#checklist-panel").is_hidden()
        invite = await page.locator("#invite-url").input_value()

        # The signer starts on the front camera and is not asked for a location.
        context, phone = await new_page(browser, PHONE, is_mobile=True, has_touch=True)
        await context.add_init_script(RECORD_CAMERA_REQUESTS)
        await phone.goto(invite)
        await phone.get_by_role("heading", name="Join your remote signing").wait_for()
        assert await phone.locator("#tip-location").is_hidden()
        await phone.get_by_role("button", name="Join now").click()
        await until("a camera request", lambda: phone.evaluate("window.__gum.length > 0"))
        assert (await phone.evaluate("window.__gum[0]"))["video"]["facingMode"] == {"ideal": "user"}
        await page.locator("#timeline li[data-type='participant.joined']").wait_for()
        assert problems_of(page) == [] and problems_of(phone) == []


async def test_refused_camera_is_explained(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    async with chromium() as browser:
        _, officer = await new_page(browser, DESKTOP)
        await officer_login(officer, site)
        invite = await create_inspection(officer, "Refusal", [("SKU-1", "", "")])

        context, phone = await new_page(browser, PHONE, is_mobile=True, has_touch=True)
        await context.add_init_script(DENY_CAMERA)
        await phone.goto(invite)
        # The token left the address bar at once.
        assert "#" not in phone.url and "rtci_" not in phone.url
        await phone.get_by_role("button", name="Join now").wait_for()
        await until("the join button", lambda: phone.locator("#join-btn").is_enabled())
        await screenshot(phone, "join-lobby-en-390x844")
        await phone.get_by_role("button", name="Join now").click()
        problem = phone.locator("#media-problem")
        await problem.get_by_role("heading", name="Camera or microphone blocked").wait_for()
        assert "Allow" in await problem.inner_text()
        assert await phone.get_by_role("button", name="Try again").is_visible()
        await screenshot(phone, "join-camera-refused-390x844")
        assert problems_of(phone) == []

        # No camera at all is a different problem with different advice.
        context, phone = await new_page(browser, PHONE, is_mobile=True, has_touch=True)
        await context.add_init_script(NO_CAMERA)
        await phone.goto(invite)
        await phone.get_by_role("button", name="Join now").click()
        await phone.get_by_role("heading", name="No camera or microphone found").wait_for()
        assert "open the invitation link on a phone" in await phone.locator("#media-problem").inner_text()


async def test_participant_page_speaks_chinese_and_refuses_bad_links(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    async with chromium() as browser:
        _, officer = await new_page(browser, DESKTOP)
        await officer_login(officer, site)
        invite = await create_inspection(officer, "Chinese", [("SKU-1", "", "")])

        _, phone = await new_page(browser, PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
        await phone.goto(invite)
        await phone.get_by_role("button", name="立即加入").wait_for()
        assert await phone.locator("html").get_attribute("lang") == "zh-CN"
        assert "视频核查" in await phone.locator("#lobby-title").inner_text()
        await screenshot(phone, "join-lobby-zh-390x844")

        _, stranger = await new_page(browser, PHONE)
        await stranger.goto(invite.split("#")[0] + "#rtci_forged_token_value")
        await stranger.get_by_role("alert").get_by_text("not valid").wait_for()
        assert await stranger.get_by_role("button", name="Join now").is_disabled()
        await stranger.goto(invite.split("#")[0])
        await stranger.get_by_role("alert").get_by_text("full link").wait_for()


async def _changed(page: Page, old: str) -> bool:
    return await page.locator("#invite-url").input_value() != old
