"""Remote signing in the browser: the signer's phone page (contract preview, handwritten signature,
consent) and the officer's console (identity, steps as they happen, sign, downloads), both in
Debian's Chromium against the real server with the phone's fake camera as live video. Also the
first-page preview endpoint over HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from playwright.async_api import Download, Page

from rtc_server.api.preview_routes import (
    PREVIEW_MAX_HEIGHT,
    PREVIEW_MAX_WIDTH,
    PreviewUnavailable,
    render_first_page,
)
from rtc_server.appkeys import SERVICES
from tests.media.media_clients import PublisherClient, answer, publisher_client
from tests.support import PASSWORD, Api, assert_error, make_pdf
from tests.web.browser import (
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

SIGNER = {"name": "Li Wei 李伟", "id_number": "110101199003071234"}


# -- the preview endpoint -----------------------------------------------------------------------


def dark_fraction(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as img:
        gray = img.convert("L")
        histogram = gray.histogram()
    return sum(histogram[:128]) / sum(histogram)


async def test_preview_is_the_first_page_for_officer_and_signer_only(api: Api) -> None:
    pdf = make_pdf(pages=3, text=b"LOAN AGREEMENT " * 4)
    created = await api.create_signing(pdf=pdf)
    sid, signer = created["id"], created["invites"]["signer"]["token"]
    url = f"/api/v1/signings/{sid}/document/preview.png"

    resp = await api.client.get(url, headers=api.auth(api.officer))
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
    png = await resp.read()
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        width, height = img.size
    # A4 fitted into the box: full height used, the page's proportions kept.
    assert height == PREVIEW_MAX_HEIGHT or width == PREVIEW_MAX_WIDTH
    assert abs(width / height - 595 / 842) < 0.01
    # The page's text is drawn (a blank render would be all white).
    assert 0 < dark_fraction(png) < 0.2

    resp = await api.client.get(url, headers=api.auth(signer))
    assert resp.status == 200
    assert await resp.read() == png
    assert len(resp.headers["X-Document-SHA256"]) == 64

    # Nobody else: no token, another officer's session, a staff invite, an inspection, unknown id.
    resp = await api.client.get(url)
    assert resp.status == 401
    assert_error(await resp.json())
    resp = await api.client.get(url, headers=api.auth(api.other_officer))
    assert resp.status in (403, 404)
    assert_error(await resp.json())
    inspection = await api.create_inspection()
    staff = inspection["invites"]["staff"]["token"]
    resp = await api.client.get(url, headers=api.auth(staff))
    assert resp.status in (401, 403)
    resp = await api.client.get(
        f"/api/v1/signings/{inspection['id']}/document/preview.png", headers=api.auth(api.officer)
    )
    assert resp.status == 404
    assert_error(await resp.json(), "not_a_signing")
    resp = await api.client.get(
        "/api/v1/signings/ses_nope/document/preview.png", headers=api.auth(api.officer)
    )
    assert resp.status == 404


def test_render_refuses_what_is_not_a_pdf() -> None:
    with pytest.raises(PreviewUnavailable):
        render_first_page(b"%PDF-1.7\n this is not a pdf at all")
    with pytest.raises(PreviewUnavailable):
        render_first_page(b"")


def test_render_fits_a_landscape_page_within_the_box() -> None:
    from pyhanko.pdf_utils import generic, writer

    w = writer.PdfFileWriter()
    stream = generic.StreamObject(stream_data=b"0 0 0 rg 50 50 500 100 re f")
    w.insert_page(
        writer.PageObject(contents=w.add_object(stream), media_box=generic.ArrayObject([0, 0, 1684, 595]))
    )
    buf = io.BytesIO()
    w.write(buf)
    png = render_first_page(buf.getvalue())
    with Image.open(io.BytesIO(png)) as img:
        assert img.size[0] == PREVIEW_MAX_WIDTH and img.size[1] < PREVIEW_MAX_HEIGHT
    assert dark_fraction(png) > 0.01


def test_every_workflow_text_is_in_english_and_chinese() -> None:
    import re

    source = (Path(__file__).resolve().parents[2] / "rtc_server/web/static/js/i18n_workflows.js").read_text()
    en, zh = source.split("\n  zh: {", 1)
    keys_en = set(re.findall(r"^    (\w+):", en, re.M))
    keys_zh = set(re.findall(r"^    (\w+):", zh, re.M))
    assert len(keys_en) > 50
    assert keys_en == keys_zh, keys_en ^ keys_zh
    # Every key the workflow modules ask for exists.
    js = Path(__file__).resolve().parents[2] / "rtc_server/web/static/js"
    used: set[str] = set()
    for name in ("signing_panel", "inspection_panel", "consent", "quality_banner"):
        used |= set(re.findall(r"t\('((?:wf|hint)_\w+)'", (js / f"{name}.js").read_text()))
    assert used and used <= keys_en, used - keys_en


# -- in the browser -----------------------------------------------------------------------------


async def officer_token(site: Site) -> str:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(site.url + "/api/v1/login", json={"username": OFFICER, "password": PASSWORD})
        assert resp.status == 200
        token: str = (await resp.json())["token"]
        return token


async def create_signing(site: Site, token: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field(
        "document",
        make_pdf(pages=2, text=b"Loan agreement"),
        filename="loan.pdf",
        content_type="application/pdf",
    )
    form.add_field("signer", json.dumps(SIGNER), content_type="application/json")
    form.add_field("title", "Mortgage 2026-114")
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            site.url + "/api/v1/signings", data=form, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()
        return created


async def session_detail(site: Site, token: str, sid: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(
            site.url + f"/api/v1/sessions/{sid}", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 200
        detail: dict[str, Any] = await resp.json()
        return detail


async def publish_audio_only(site: Site, token: str, sid: str) -> tuple[PublisherClient, str]:
    publisher, offer = await publisher_client(None)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            site.url + f"/api/v1/sessions/{sid}/whip",
            data=offer,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        assert resp.status == 201, await resp.text()
        await answer(publisher.pc, await resp.text())
        return publisher, resp.headers["Location"]


async def step_status(page: Page, step: str) -> str | None:
    return await page.locator(f'#signing-steps li[data-step="{step}"]').get_attribute("data-status")


async def draw_signature(page: Page) -> None:
    box = await page.locator(".sig-canvas").bounding_box()
    assert box is not None
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    await page.mouse.move(x + 0.1 * w, y + 0.7 * h)
    await page.mouse.down()
    for i in range(1, 25):
        f = i / 24
        await page.mouse.move(x + (0.1 + 0.8 * f) * w, y + (0.7 - 0.4 * abs(((f * 4) % 2) - 1)) * h, steps=2)
    await page.mouse.up()


async def both_sizes(page: Page, name: str, first: Any, second: Any) -> None:
    """Screenshots at the phone's and the desk's sizes, back to `first` afterwards."""
    await screenshot(page, f"{name}-{first['width']}x{first['height']}")
    await page.set_viewport_size(second)
    await asyncio.sleep(0.3)
    await screenshot(page, f"{name}-{second['width']}x{second['height']}")
    await page.set_viewport_size(first)


async def save(download: Download, path: Path) -> bytes:
    await download.save_as(str(path))
    return path.read_bytes()


@pytest.mark.browser
@pytest.mark.slow
async def test_signer_consents_and_officer_signs_in_the_browser(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    token = await officer_token(site)
    created = await create_signing(site, token)
    sid, invite = created["id"], created["invites"]["signer"]["url"]
    media = site.app[SERVICES].media

    async with chromium() as browser:
        _, console = await new_page(browser, DESKTOP)
        await officer_login(console, site)
        await console.goto(site.url + f"/#session/{sid}")
        await console.reload()
        await console.locator('#signing-steps li[data-step="identity"]').wait_for()
        assert [await step_status(console, s) for s in ("identity", "consent", "signature")] == [
            "pending"
        ] * 3

        # Before the signer joins, neither decision is possible, and the panel says why.
        await console.locator("#signing-actions").get_by_text("has not joined yet").wait_for()
        assert await console.get_by_role("button", name="Confirm identity").is_disabled()

        # The signer connects with sound only: live, but not on camera. The refusal is in plain words.
        publisher, resource = await publish_audio_only(site, created["invites"]["signer"]["token"], sid)
        await console.locator("#session-state.badge-live").wait_for()
        await console.get_by_role("button", name="Confirm identity").click()
        await console.locator("#signing-message").get_by_text("camera is not live").wait_for()
        await screenshot(console, "signing-console-not-live-1440x900")
        async with aiohttp.ClientSession() as http:
            await http.delete(
                site.url + resource,
                headers={"Authorization": f"Bearer {created['invites']['signer']['token']}"},
            )
        await publisher.pc.close()

        _, phone = await new_page(browser, PHONE)
        await phone.goto(invite)
        await phone.get_by_role("button", name="Join now").click()
        await phone.locator('#contract-preview[data-loaded="true"]').wait_for()
        natural = await phone.locator("#contract-preview").evaluate("img => img.naturalWidth")
        assert natural > 300
        await phone.locator("#consent-status").get_by_text("Waiting for the officer").wait_for()
        assert await phone.locator("#consent-btn").is_disabled()
        await both_sizes(phone, "signing-phone-waiting", PHONE, DESKTOP)

        detail = await session_detail(site, token, sid)
        signer_id = next(p["id"] for p in detail["participants"] if p["role"] == "signer")

        async def live() -> bool:
            return bool(media.is_live(sid, signer_id))

        await until("the signer's video to be live", live)

        await console.get_by_label("Notes on the identity check (optional)").fill(
            "Passport 护照 checked on video"
        )
        await console.get_by_role("button", name="Confirm identity").click()
        await until(
            "identity confirmed in the console", lambda: _is(step_status(console, "identity"), "confirmed")
        )
        assert "Passport 护照 checked on video" in await console.locator("#signing-steps").inner_text()
        assert await console.get_by_role("button", name="Sign document").is_disabled()

        # The signer's page learns of it over the socket; consent needs the box ticked.
        await phone.locator("#consent-status").get_by_text("identity is confirmed").wait_for()
        assert await phone.locator("#consent-btn").is_disabled()
        await phone.get_by_label("I have read the contract").check()
        # Consenting without a signature is refused on the page.
        await phone.locator("#consent-btn").click()
        await phone.locator("#consent-status").get_by_text("sign in the box first").wait_for()
        await draw_signature(phone)
        await both_sizes(phone, "signing-phone-ready", PHONE, DESKTOP)
        await phone.locator("#consent-btn").click()
        await phone.locator("#consent-status").get_by_text("consent has been recorded").wait_for()
        assert await phone.locator(".consent-form").is_hidden()
        await both_sizes(phone, "signing-phone-consented", PHONE, DESKTOP)

        # The console's steps show the consent as it happened, and Sign becomes available.
        await until("consent in the console", lambda: _is(step_status(console, "consent"), "given"))
        await until("Sign enabled", console.get_by_role("button", name="Sign document").is_enabled)
        await both_sizes(console, "signing-console-consented", DESKTOP, PHONE)
        await console.get_by_role("button", name="Sign document").click()
        await console.get_by_role("button", name="Download signed PDF").wait_for(timeout=60000)
        await until(
            "the signature step done in the console", lambda: _is(step_status(console, "signature"), "signed")
        )
        async with console.expect_download() as info:
            await console.get_by_role("button", name="Download signed PDF").click()
        pdf = await save(await info.value, tmp_path / "signed.pdf")
        await both_sizes(console, "signing-console-signed", DESKTOP, PHONE)

        assert pdf.startswith(b"%PDF") and b"/ByteRange" in pdf
        report = await asyncio.to_thread(site.app[SERVICES].signing.validate, pdf)
        assert report.ok, report.to_text()
        assert any(s.kind == "signature" and "Li Wei" in s.signer for s in report.signatures), (
            report.to_text()
        )
        detail = await session_detail(site, token, sid)
        consent = next(s for s in detail["steps"] if s["step"] == "consent")
        assert consent["handwritten_signature_sha256"], consent  # the drawn PNG went with the consent
        await phone.locator("#consent-status").get_by_text("contract has been signed").wait_for()
        # The signer downloads the signed copy too (a blob fetched with the invite token).
        async with phone.expect_download() as info:
            await phone.get_by_role("button", name="Download the full contract (PDF)").click()
        assert await save(await info.value, tmp_path / "signer-copy.pdf") == pdf

        # End; the evidence package downloads from the console.
        await console.get_by_role("button", name="End session").click()
        await console.locator("#confirm-ok").click()
        await console.get_by_role("button", name="Download evidence (zip)").wait_for()
        async with console.expect_download() as info:
            await console.get_by_role("button", name="Download evidence (zip)").click()
        evidence = await save(await info.value, tmp_path / "evidence.zip")
        with zipfile.ZipFile(io.BytesIO(evidence)) as zf:
            names = zf.namelist()
            assert zf.testzip() is None
        assert any(n.endswith(".pdf") for n in names), names
        await both_sizes(console, "signing-console-ended", DESKTOP, PHONE)

        assert problems_of(console) == [] and problems_of(phone) == []


async def _is(value: Any, expected: str) -> bool:
    return (await value) == expected


@pytest.mark.browser
@pytest.mark.slow
async def test_officer_rejects_the_identity_in_the_browser(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    site = await start_site(aiohttp_server, tmp_path / "data")
    token = await officer_token(site)
    created = await create_signing(site, token)
    sid, signer = created["id"], created["invites"]["signer"]["token"]

    async with chromium() as browser:
        _, console = await new_page(browser, DESKTOP)
        await officer_login(console, site)
        await console.goto(site.url + f"/#session/{sid}")
        await console.reload()
        publisher, _resource = await publish_audio_only(site, signer, sid)
        try:
            await console.locator("#session-state.badge-live").wait_for()
            await console.get_by_label("Notes on the identity check (optional)").fill(
                "Face does not match the ID"
            )
            await console.get_by_role("button", name="Reject identity").click()
            # A second, explicit step: rejecting ends the signing.
            await console.get_by_text("This ends the signing").wait_for()
            assert await step_status(console, "identity") == "pending"
            await console.locator("#reject-confirm-btn").click()
            await until(
                "identity rejected in the console", lambda: _is(step_status(console, "identity"), "rejected")
            )
        finally:
            await publisher.pc.close()
        await console.locator("#session-state.badge-ended").wait_for()
        assert "Face does not match the ID" in await console.locator("#signing-steps").inner_text()
        await console.locator("#signing-actions").get_by_text("Identity rejected").wait_for()
        assert await console.get_by_role("button", name="Sign document").count() == 0
        assert await console.get_by_role("button", name="Download signed PDF").count() == 0
        await screenshot(console, "signing-console-rejected-1440x900")
        async with console.expect_download() as info:
            await console.get_by_role("button", name="Download evidence (zip)").click()
        evidence = await save(await info.value, tmp_path / "evidence.zip")
        with zipfile.ZipFile(io.BytesIO(evidence)) as zf:
            trail = next(n for n in zf.namelist() if n.endswith(".json") and "audit" in n)
            assert b"signing.identity_rejected" in zf.read(trail)

        detail = await session_detail(site, token, sid)
        assert detail["state"] == "ended"
        assert (
            next(s for s in detail["steps"] if s["step"] == "identity")["notes"]
            == "Face does not match the ID"
        )
        assert problems_of(console) == []
