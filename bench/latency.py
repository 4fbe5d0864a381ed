"""Loopback glass-to-glass latency and server CPU: direct call (floor), rtc-server, MediaRelay relay.

One publisher paints the wall-clock time into each frame and encodes it with libvpx as it is captured;
one viewer decodes each frame the moment it completes and reads the time back. The three systems run
one after the other in the same invocation, so the differences hold on a noisy machine.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .clients import DecodingViewer, Publisher, close_all, local_offer, set_answer, wait_for
from .servers import Running, metrics_delta_many, new_session, officer_token, relay_server, rtc_server, scrape
from .sources import LiveEncodedTrack, VideoFormat
from .stats import LatencySummary, Window, summarise_windows

MODES = ("direct", "sfu", "relay")


@dataclass
class ModeResult:
    mode: str
    latency: LatencySummary
    publisher_kbps: float
    encode_ms: float
    server_cpu_pct: float | None = None
    server_rss_mib: float | None = None
    server_idle_cpu_pct: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    rounds: int = 1

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "rounds": self.rounds, **self.latency.row()}
        out["publisher_kbps"] = round(self.publisher_kbps)
        out["encode_ms"] = round(self.encode_ms, 1)
        if self.server_cpu_pct is not None:
            out["server_cpu_pct"] = round(self.server_cpu_pct, 2)
            out["server_idle_cpu_pct"] = round(self.server_idle_cpu_pct or 0.0, 2)
            out["server_rss_mib"] = round(self.server_rss_mib or 0.0, 1)
        for key, value in self.metrics.items():
            out[key] = round(value, 3) if isinstance(value, float) else value
        return out


@dataclass
class Round:
    """One measurement window of one system."""

    window: Window
    kbps: float
    encode_ms: float
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_mib: float | None = None
    idle_cpu_pct: float | None = None
    scrapes: tuple[str, str] | None = None


async def _measure(
    viewer: DecodingViewer,
    seconds: float,
    warmup: float,
    server: Running | None,
    http: aiohttp.ClientSession,
    metrics_url: str | None,
) -> tuple[Window, float, float, float | None, tuple[str, str] | None]:
    await wait_for(lambda: len(viewer.samples) > 0, 20, "the first frame at the viewer")
    await asyncio.sleep(warmup)
    before = await scrape(http, metrics_url) if metrics_url else ""
    cpu0, t0 = (server.cpu() if server else 0.0), time.time()
    await asyncio.sleep(seconds)
    cpu1, t1 = (server.cpu() if server else 0.0), time.time()
    after = await scrape(http, metrics_url) if metrics_url else ""
    samples = list(viewer.samples)
    window: Window = ([s.shown for s in samples], [s.captured for s in samples], t0, t1)
    rss = server.rss_mib() if server else None
    return window, cpu1 - cpu0, t1 - t0, rss, (before, after) if metrics_url else None


async def idle_cpu(server: Running, seconds: float = 2.0) -> float:
    c0, t0 = server.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (server.cpu() - c0) / (time.monotonic() - t0)


async def run_mode(
    mode: str, fmt: VideoFormat, seconds: float, warmup: float, kind: str = "signing"
) -> Round:
    """One window of one system: a fresh publisher, viewer and server (or relay) process."""
    track = LiveEncodedTrack(fmt)
    publisher = Publisher(track)
    viewer = DecodingViewer(audio=mode != "direct")
    idle: float | None = None
    async with aiohttp.ClientSession() as http:
        try:
            if mode == "direct":
                offer = await local_offer(publisher.pc, True)
                await set_answer(publisher.pc, await viewer.accept(offer, loopback=True))
                window, cpu_s, wall_s, rss, scrapes = await _measure(
                    viewer, seconds, warmup, None, http, None
                )
            elif mode == "sfu":
                with tempfile.TemporaryDirectory() as tmp, rtc_server(Path(tmp)) as server:
                    idle = await idle_cpu(server)
                    officer = await officer_token(http, server.url)
                    session = await new_session(http, server.url, officer, "latency bench", kind)
                    await publisher.publish(http, session.whip(server.url), session.publish_token, True)
                    await viewer.watch(http, session.whep(server.url), officer, True)
                    window, cpu_s, wall_s, rss, scrapes = await _measure(
                        viewer, seconds, warmup, server, http, server.url
                    )
                    await close_all(viewer, publisher)
            elif mode == "relay":
                with relay_server() as relay:
                    idle = await idle_cpu(relay)
                    await publisher.publish(http, f"{relay.url}/whip", None, True)
                    await viewer.watch(http, f"{relay.url}/whep", None, True)
                    window, cpu_s, wall_s, rss, scrapes = await _measure(
                        viewer, seconds, warmup, relay, http, None
                    )
                    await close_all(viewer, publisher)
            else:
                raise ValueError(f"unknown mode {mode}")
        finally:
            await close_all(viewer, publisher)
    kbps = track.bytes_sent * 8 / max(1, track.frames_sent) * fmt.fps / 1000
    encode_ms = 1000 * track.encode_s / max(1, track.frames_sent)
    return Round(window, kbps, encode_ms, cpu_s, wall_s, rss, idle, scrapes)


def merge(mode: str, rounds: list[Round]) -> ModeResult:
    n = len(rounds)
    measured = mode != "direct"
    wall = sum(r.wall_s for r in rounds)
    scrapes = [r.scrapes for r in rounds if r.scrapes is not None]
    return ModeResult(
        mode=mode,
        latency=summarise_windows([r.window for r in rounds]),
        publisher_kbps=sum(r.kbps for r in rounds) / n,
        encode_ms=sum(r.encode_ms for r in rounds) / n,
        server_cpu_pct=100 * sum(r.cpu_s for r in rounds) / wall if measured and wall > 0 else None,
        server_rss_mib=max(r.rss_mib or 0.0 for r in rounds) if measured else None,
        server_idle_cpu_pct=sum(r.idle_cpu_pct or 0.0 for r in rounds) / n if measured else None,
        metrics=metrics_delta_many(scrapes) if scrapes else {},
        rounds=n,
    )


@dataclass
class LoopbackReport:
    fmt: VideoFormat
    seconds: float
    results: dict[str, ModeResult]

    def derived(self) -> dict[str, float]:
        r = self.results
        out: dict[str, float] = {}
        if "direct" in r and "sfu" in r:
            out["added_p50_ms"] = r["sfu"].latency.p50_ms - r["direct"].latency.p50_ms
            out["added_p95_ms"] = r["sfu"].latency.p95_ms - r["direct"].latency.p95_ms
        if "relay" in r and "direct" in r:
            out["relay_added_p50_ms"] = r["relay"].latency.p50_ms - r["direct"].latency.p50_ms
            out["relay_added_p95_ms"] = r["relay"].latency.p95_ms - r["direct"].latency.p95_ms
        sfu_cpu = r["sfu"].server_cpu_pct if "sfu" in r else None
        relay_cpu = r["relay"].server_cpu_pct if "relay" in r else None
        if sfu_cpu is not None and relay_cpu is not None and sfu_cpu > 0:
            out["relay_over_sfu_cpu"] = relay_cpu / sfu_cpu
        return out


async def run_loopback(
    fmt: VideoFormat,
    seconds: float,
    warmup: float = 2.0,
    modes: tuple[str, ...] = MODES,
    kind: str = "signing",
    rounds: int = 1,
) -> LoopbackReport:
    """Each system for `seconds` in total, in `rounds` interleaved windows (direct, sfu, relay, direct,
    ...) so that load from elsewhere on the machine falls on all of them alike."""
    collected: dict[str, list[Round]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            collected[mode].append(await run_mode(mode, fmt, seconds / rounds, warmup, kind))
    return LoopbackReport(fmt, seconds, {mode: merge(mode, r) for mode, r in collected.items()})
