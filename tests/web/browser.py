"""Helpers for the browser tests: the real server on a known port, Debian's Chromium, screenshots."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from rtc_server.api.app import create_app
from rtc_server.appkeys import CONFIG, SERVICES
from rtc_server.models import Role
from tests.support import PASSWORD, make_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Remote audio plays without a tap, as it does on a page the user has already clicked in.
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1440, "height": 900}
OFFICER = "officer1"

ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class Site:
    server: TestServer
    app: web.Application

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


async def until(what: str, check: Any, timeout: float = 20.0) -> Any:
    """Polls `check` from Python: page.wait_for_function would eval a string, which the CSP forbids."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def start_site(
    aiohttp_server: ServerFactory, data_dir: Path, media: dict[str, Any] | None = None
) -> Site:
    port = free_port()
    # Invite links must point at this very server: the test follows them like a phone would.
    config = make_config(
        data_dir, server={"public_url": f"http://127.0.0.1:{port}", "port": port}, media=media or {}
    )
    app = create_app(config)
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    await app[SERVICES].accounts.add_user(OFFICER, PASSWORD, Role.OFFICER)
    return Site(server=server, app=app)


async def restart_site(aiohttp_server: ServerFactory, site: Site, down_s: float) -> Site:
    """Stops the server (sockets closed, services shut down), waits, and starts it again on the same
    port and data dir, as a deploy or a crash-and-restart would."""
    config = site.app[CONFIG]
    port = site.server.port  # forgotten by the server once closed
    await site.server.close()
    await asyncio.sleep(down_s)
    app = create_app(config)
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    return Site(server=server, app=app)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, viewport: ViewportSize, **options: Any) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport=viewport, **options)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.problems = problems  # type: ignore[attr-defined]
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda ws: requested.append(ws.url))
    context.requested = requested  # type: ignore[attr-defined]
    return context, page


def requested_urls(context: BrowserContext) -> list[str]:
    """Every URL the context asked for, WebSocket upgrades included."""
    found: list[str] = context.requested  # type: ignore[attr-defined]
    return found


# Records the constraints of every getUserMedia call, to check which camera a page asks for.
RECORD_CAMERA_REQUESTS = """
window.__gum = [];
const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.__gum.push(JSON.parse(JSON.stringify(constraints)));
  return original(constraints);
};
"""


def problems_of(page: Page) -> list[str]:
    found: list[str] = page.problems  # type: ignore[attr-defined]
    return found


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


async def officer_login(page: Page, site: Site) -> None:
    await page.goto(site.url + "/")
    await page.get_by_label("Username").fill(OFFICER)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Start a video session").wait_for()


async def create_inspection(page: Page, title: str, items: list[tuple[str, str, str]]) -> str:
    """Fills the form as an officer would; returns the invite URL the console shows."""
    await page.get_by_role("button", name="New inspection").click()
    await page.get_by_label("Title", exact=True).fill(title)
    await page.get_by_label("Site", exact=True).fill("Depot 3")
    for i, (sku, description, qty) in enumerate(items, start=1):
        if i > 1:
            await page.get_by_role("button", name="Add item").click()
        await page.get_by_label(f"SKU or code {i}").fill(sku)
        await page.get_by_label(f"Description {i}").fill(description)
        await page.get_by_label(f"Quantity {i}").fill(qty)
    await page.get_by_role("button", name="Create inspection").click()
    await page.locator("#session-title").get_by_text(title).wait_for()
    url: str = await page.locator("#invite-url").input_value()
    return url
