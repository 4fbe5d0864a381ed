"""Chromium end to end: a canvas that paints the clock publishes over WHIP; Chromium watches over WHEP.

Debian's /usr/bin/chromium, headless, driven by Playwright (never `playwright install`). The pages are
served by routing a path of the server's own origin to the benchmark's HTML, so WHIP/WHEP calls are
same-origin and need no CORS configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, async_playwright

from .browser_pages import PUBLISHER_HTML, VIEWER_HTML
from .clients import BenchError, DecodingViewer, close_all, wait_for
from .servers import new_session, officer_token, rtc_server
from .stats import summarise

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    # Host candidates as addresses, not mDNS names (a page without camera permission gets mDNS,
    # which the aiortc server cannot resolve). Local Network Access checks off: the routed page has
    # no address of its own, and Chromium then refuses its fetch to the server's private address.
    "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
    # The viewer tab must not be throttled in the background.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, base: str, name: str, html: str) -> Page:
    page = await browser.new_page()
    url = f"{base}/bench-{name}.html"
    await page.route(url, lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.goto(url)
    return page


async def publish_from_chromium(whip: str, token: str, seconds: float, max_kbps: int = 1500) -> None:
    """Role `publish --browser`: publish until `seconds` pass or SIGTERM; print the sender's figures."""
    from .roles import emit

    base = whip.split("/api/", 1)[0]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with chromium() as browser:
        page = await open_page(browser, base, "publisher", PUBLISHER_HTML)
        await page.evaluate("([u, t, k]) => window.start(u, t, k)", [whip, token, max_kbps])
        first = await page.evaluate("window.sent()")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        last = await page.evaluate("window.sent()")
    emit("RESULT", _sender_figures(first, last))


def _sender_figures(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    span_s = max(1e-3, (last.get("time", 0) - first.get("time", 0)) / 1000)

    def delta(key: str) -> float:
        return float(last.get(key) or 0) - float(first.get(key) or 0)

    return {
        "kbps": round(delta("bytes") * 8 / span_s / 1000),
        "fps": round(delta("frames_sent") / span_s, 1),
        "frames": last.get("frames"),
        "keyframes": delta("keyframes"),
        "nacks": delta("nacks"),
        "plis": delta("plis"),
        "retransmit_kbps": round(delta("retransmitted_bytes") * 8 / span_s / 1000),
        "rtt_ms": last.get("rtt_ms"),
        "fraction_lost": last.get("fraction_lost"),
        "resolution": f"{last.get('width')}x{last.get('height')}",
        "limitation": last.get("limitation"),
    }


async def chromium_samples(page: Page, t0: float, t1: float) -> dict[str, Any]:
    samples = await page.evaluate("window.samples")
    shown = [s[0] / 1000 for s in samples]
    captured = [s[1] / 1000 if s[1] is not None else None for s in samples]
    row = summarise(shown, captured, t0, t1).row()
    row.update({f"chromium_{k}": v for k, v in (await page.evaluate("window.received()")).items()})
    return row


async def run_browser_loopback(seconds: float, warmup: float = 5.0, kind: str = "signing") -> dict[str, Any]:
    """Chromium canvas -> rtc-server (loopback) -> a Chromium viewer page and an aiortc viewer."""
    with tempfile.TemporaryDirectory() as tmp, rtc_server(Path(tmp)) as server:
        async with aiohttp.ClientSession() as http, chromium() as browser:
            officer = await officer_token(http, server.url)
            session = await new_session(http, server.url, officer, "browser bench", kind)
            publisher = await open_page(browser, server.url, "publisher", PUBLISHER_HTML)
            await publisher.evaluate(
                "([u, t, k]) => window.start(u, t, k)",
                [session.whip(server.url), session.publish_token, 1500],
            )
            viewer = await open_page(browser, server.url, "viewer", VIEWER_HTML)
            await viewer.evaluate("([u, t]) => window.start(u, t)", [session.whep(server.url), officer])
            aio = DecodingViewer()
            try:
                await aio.watch(http, session.whep(server.url), officer, loopback=True)
                await wait_for(lambda: len(aio.samples) > 0, 30, "the first frame at the aiortc viewer")
                await asyncio.sleep(warmup)
                first = await publisher.evaluate("window.sent()")
                t0 = time.time()
                await asyncio.sleep(seconds)
                t1 = time.time()
                last = await publisher.evaluate("window.sent()")
                in_chromium = await chromium_samples(viewer, t0, t1)
            finally:
                await close_all(aio)
            samples = list(aio.samples)
            in_aiortc = summarise([s.shown for s in samples], [s.captured for s in samples], t0, t1).row()
    return {
        "publisher": _sender_figures(first, last),
        "chromium_viewer": in_chromium,
        "aiortc_viewer": in_aiortc,
    }
