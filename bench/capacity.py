"""Capacity: concurrent sessions (1 Mbit/s publisher, one viewer, recording on) at >= 29 fps each.

Load generators are cheap: publishers loop a pre-encoded clip, viewers identify frames by the hash
of their encoded bytes (forwarding leaves them unchanged), so no client encodes or decodes. They run
in worker processes, on the same 2-core machine as the server, and their own cost limits the result too:
the report gives the clients' CPU beside the server's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from .clients import HashViewer, Publisher, close_all, wait_for
from .servers import Running, metrics_delta, new_session, officer_token, rtc_server, scrape
from .sources import ClipTrack, EncodedClip, VideoFormat, encode_clip
from .stats import cpu_seconds, percentile, summarise, udp_receive_drops

MIN_FPS = 29.0


@dataclass
class Step:
    sessions: int
    min_fps: float
    mean_fps: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    freezes: int
    server_cpu_pct: float
    client_cpu_pct: float
    server_rss_mib: float
    forward_delay_p95_ms: float
    udp_rcvbuf_drops: int

    @property
    def ok(self) -> bool:
        return self.min_fps >= MIN_FPS

    def row(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in self.__dict__.items()} | {
            "ok": self.ok
        }


@dataclass
class CapacityReport:
    clip_kbps: float
    steps: list[Step] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        good = [s.sessions for s in self.steps if s.ok]
        return max(good) if good else 0


@dataclass
class _Pair:
    publisher: Publisher
    viewer: HashViewer


async def _add_session(
    http: aiohttp.ClientSession, url: str, officer: str, clip: EncodedClip, n: int, kind: str
) -> _Pair:
    session = await new_session(http, url, officer, f"capacity {n}", kind)
    track = ClipTrack(clip)
    publisher = Publisher(track)
    await publisher.publish(http, session.whip(url), session.publish_token, True)
    viewer = HashViewer(track.sent_at)
    await viewer.watch(http, session.whep(url), officer, True)
    return _Pair(publisher, viewer)


def _worker(conn: Connection, url: str, officer: str, clip: EncodedClip, kind: str) -> None:
    """A load-generator process: owns some sessions' clients, answers the orchestrator's commands."""
    asyncio.run(_worker_loop(conn, url, officer, clip, kind))


async def _worker_loop(conn: Connection, url: str, officer: str, clip: EncodedClip, kind: str) -> None:
    loop = asyncio.get_running_loop()
    pairs: list[_Pair] = []
    async with aiohttp.ClientSession() as http:
        try:
            while True:
                command, arg = await loop.run_in_executor(None, conn.recv)
                if command == "add":
                    for _ in range(arg):
                        pairs.append(await _add_session(http, url, officer, clip, len(pairs), kind))
                    await wait_for(lambda: all(p.viewer.samples for p in pairs), 30, "first frames")
                    conn.send(len(pairs))
                elif command == "window":
                    t0, t1 = arg
                    out = []
                    for pair in pairs:
                        samples = list(pair.viewer.samples)
                        summary = summarise([s.shown for s in samples], [s.captured for s in samples], t0, t1)
                        delays = [
                            1000 * (s.shown - s.captured)
                            for s in samples
                            if s.captured is not None and t0 <= s.shown < t1
                        ]
                        out.append((summary.fps, summary.freezes, delays))
                    conn.send(out)
                else:
                    break
        finally:
            for pair in pairs:
                await close_all(pair.viewer, pair.publisher)
            conn.send(None)


class _Workers:
    def __init__(self, count: int, url: str, officer: str, clip: EncodedClip, kind: str = "signing") -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.sizes = [0] * count
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, url, officer, clip, kind), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    async def _ask(self, i: int, command: str, arg: Any) -> Any:
        self.conns[i].send((command, arg))
        return await asyncio.get_running_loop().run_in_executor(None, self.conns[i].recv)

    async def grow_to(self, total: int) -> None:
        adds = [0] * len(self.conns)
        n = sum(self.sizes)
        while n < total:
            i = self.sizes.index(min(self.sizes))
            self.sizes[i] += 1
            adds[i] += 1
            n += 1
        await asyncio.gather(*(self._ask(i, "add", k) for i, k in enumerate(adds) if k))

    async def window(self, t0: float, t1: float) -> list[tuple[float, int, list[float]]]:
        parts = await asyncio.gather(*(self._ask(i, "window", (t0, t1)) for i in range(len(self.conns))))
        return [row for part in parts for row in part]

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs if p.pid is not None)

    async def close(self) -> None:
        for i in range(len(self.conns)):
            try:
                await asyncio.wait_for(self._ask(i, "quit", None), 30)
            except (TimeoutError, EOFError, OSError):
                pass
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


async def _measure(workers: _Workers, server: Running, http: aiohttp.ClientSession, seconds: float) -> Step:
    before = await scrape(http, server.url)
    s0, c0, d0, t0 = server.cpu(), workers.cpu(), udp_receive_drops(), time.time()
    await asyncio.sleep(seconds)
    s1, c1, d1, t1 = server.cpu(), workers.cpu(), udp_receive_drops(), time.time()
    after = await scrape(http, server.url)
    rows = await workers.window(t0, t1)
    fps = [r[0] for r in rows]
    delays = [d for r in rows for d in r[2]]
    delta = metrics_delta(before, after)
    nan = float("nan")
    return Step(
        sessions=len(rows),
        min_fps=min(fps),
        mean_fps=sum(fps) / len(fps),
        p50_ms=percentile(delays, 50) if delays else nan,
        p95_ms=percentile(delays, 95) if delays else nan,
        max_ms=max(delays) if delays else nan,
        freezes=sum(r[1] for r in rows),
        server_cpu_pct=100 * (s1 - s0) / (t1 - t0),
        client_cpu_pct=100 * (c1 - c0) / (t1 - t0),
        server_rss_mib=server.rss_mib(),
        forward_delay_p95_ms=float(delta["forward_delay_p95_ms"]),  # type: ignore[arg-type]
        udp_rcvbuf_drops=d1 - d0,
    )


async def run_capacity(
    steps: tuple[int, ...],
    seconds: float = 10.0,
    settle: float = 3.0,
    fmt: VideoFormat | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
    kind: str = "signing",
) -> CapacityReport:
    """Grow to each step's session count, measure, and stop at the first step that misses 29 fps."""
    fmt = fmt or VideoFormat()
    clip = await asyncio.get_running_loop().run_in_executor(None, encode_clip, fmt, 150)
    report = CapacityReport(clip.bitrate / 1000)
    with tempfile.TemporaryDirectory() as tmp, rtc_server(Path(tmp)) as server:
        async with aiohttp.ClientSession() as http:
            officer = await officer_token(http, server.url)
            pool = _Workers(workers, server.url, officer, clip, kind)
            try:
                for target in steps:
                    await pool.grow_to(target)
                    await asyncio.sleep(settle)
                    step = await _measure(pool, server, http, seconds)
                    report.steps.append(step)
                    log(f"capacity step: {step.row()}")
                    if not step.ok:
                        break
            finally:
                await pool.close()
    return report
