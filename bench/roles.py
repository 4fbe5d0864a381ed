"""Client processes for runs across network namespaces: each prints one JSON line per event on stdout.

python -m bench.roles watch --base URL [--seconds S] [--warmup W]
    logs in as the bench officer, creates a session, prints `SESSION {...}`, watches over WHEP,
    then prints `RESULT {...}` (glass-to-glass figures of the viewer) and exits.
python -m bench.roles publish --whip URL --token T [--seconds S] [--browser]
    publishes the painted clock over WHIP (aiortc + libvpx, or Chromium's canvas) until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict

import aiohttp

from .clients import BenchError, DecodingViewer, Publisher, close_all, wait_for
from .servers import metrics_delta, new_session, officer_token, scrape
from .sources import LiveEncodedTrack, VideoFormat
from .stats import summarise


def emit(kind: str, payload: dict[str, object]) -> None:
    print(f"{kind} {json.dumps(payload)}", flush=True)


async def watch(base: str, seconds: float, warmup: float, first_frame_within: float, kind: str) -> None:
    viewer = DecodingViewer()
    async with aiohttp.ClientSession() as http:
        officer = await officer_token(http, base)
        session = await new_session(http, base, officer, "network bench", kind)
        emit("SESSION", asdict(session))
        try:
            await viewer.watch(http, session.whep(base), officer, loopback=False)
            await wait_for(lambda: len(viewer.samples) > 0, first_frame_within, "the first frame")
            await asyncio.sleep(warmup)
            before = await scrape(http, base)
            t0 = time.time()
            await asyncio.sleep(seconds)
            t1 = time.time()
            server = _server_counters(before, await scrape(http, base))
        finally:
            await close_all(viewer)
    samples = list(viewer.samples)
    summary = summarise([s.shown for s in samples], [s.captured for s in samples], t0, t1)
    emit("RESULT", {**summary.row(), "decode_errors": viewer.decode_errors, **server})


def _server_counters(before: str, after: str) -> dict[str, object]:
    """The server's own view of the window: NACKs, keyframe requests, frames given up on."""
    delta = metrics_delta(before, after)
    return {f"server_{k.removeprefix('rtc_')}": v for k, v in delta.items() if k.startswith("rtc_")}


async def watch_in_chromium(
    base: str, seconds: float, warmup: float, first_frame_within: float, kind: str
) -> None:
    """As `watch`, with a Chromium page as the viewer: latency read off each presented frame."""
    from .browser import VIEWER_HTML, chromium, chromium_samples, open_page

    async with aiohttp.ClientSession() as http:
        officer = await officer_token(http, base)
        session = await new_session(http, base, officer, "network bench", kind)
    emit("SESSION", asdict(session))
    async with chromium() as browser:
        page = await open_page(browser, base, "viewer", VIEWER_HTML)
        await page.evaluate("([u, t]) => window.start(u, t)", [session.whep(base), officer])
        deadline = time.monotonic() + first_frame_within
        while await page.evaluate("window.samples.length") == 0:
            if time.monotonic() > deadline:
                raise BenchError("no frame reached the Chromium viewer")
            await asyncio.sleep(0.2)
        await asyncio.sleep(warmup)
        async with aiohttp.ClientSession() as http:
            before = await scrape(http, base)
            t0 = time.time()
            await asyncio.sleep(seconds)
            t1 = time.time()
            server = _server_counters(before, await scrape(http, base))
        emit("RESULT", {**await chromium_samples(page, t0, t1), **server})


async def publish(whip: str, token: str, seconds: float, fmt: VideoFormat) -> None:
    track = LiveEncodedTrack(fmt)
    publisher = Publisher(track)
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        try:
            await publisher.publish(http, whip, token, loopback=False)
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            pass
        finally:
            await close_all(publisher)
    elapsed = time.monotonic() - started
    emit("RESULT", {"kbps": round(track.bytes_sent * 8 / elapsed / 1000), "frames": track.frames_sent})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--base", required=True)
    w.add_argument("--seconds", type=float, default=30)
    w.add_argument("--warmup", type=float, default=5)
    w.add_argument("--first-frame-within", type=float, default=60)
    w.add_argument("--kind", default="signing", choices=["signing", "inspection"])
    w.add_argument("--browser", action="store_true", help="watch in a Chromium page instead")
    p = sub.add_parser("publish")
    p.add_argument("--whip", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--browser", action="store_true", help="publish from Chromium's canvas instead")
    args = parser.parse_args(argv)
    if args.role == "watch":
        run = watch_in_chromium if args.browser else watch
        asyncio.run(run(args.base, args.seconds, args.warmup, args.first_frame_within, args.kind))
    elif args.browser:
        from .browser import publish_from_chromium

        asyncio.run(publish_from_chromium(args.whip, args.token, args.seconds))
    else:
        loop = asyncio.new_event_loop()
        task = loop.create_task(publish(args.whip, args.token, args.seconds, VideoFormat()))
        import signal

        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        loop.run_until_complete(task)
        loop.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line the orchestrator can show, not a traceback lost in a pipe
        print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from exc
