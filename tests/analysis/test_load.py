"""The analyser under real-time load: the event loop stays responsive, analysis adapts."""

from __future__ import annotations

import asyncio
import resource
import statistics
import time

import numpy as np
import pytest

from rtc_server.analysis import AnalyserSettings, AnalysisEvent, CodeDetected, Detection, StreamAnalyser
from rtc_server.media.frames import VP8, EncodedFrame

from .video import FPS, code_image, encode_clip, place, scene, to_encoded_frames


async def feed_in_real_time(analyser: StreamAnalyser | None, frames: list[EncodedFrame]) -> list[float]:
    """Feed at 30 fps of wall time while a ticker measures how late the loop wakes it (lag)."""
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t0 - 0.005)

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        delay = start + i / FPS - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if analyser is not None:
            analyser.feed(frame)
    await asyncio.sleep(0.3)
    done = True
    await task
    return lags


@pytest.mark.slow
async def test_event_loop_is_not_blocked_at_1280x720_30fps() -> None:
    base = scene(1280 + 200, 720)
    qr = code_image("SKU-LOAD-1", "qr_code", 8)
    images = []
    for i in range(150):  # 5 s, panning, a QR code in view
        img = np.ascontiguousarray(base[:, i : i + 1280])
        place(img, qr, 300 + i, 200)
        images.append(img)
    frames = to_encoded_frames(encode_clip(images, bitrate=2_500_000))
    events: list[AnalysisEvent] = []
    baseline = await feed_in_real_time(None, frames[:60])  # the machine's own lag, same ticker
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    loop_cpu0 = time.thread_time()  # CPU of this thread: the event loop's
    async with StreamAnalyser(VP8, ["SKU-LOAD-1"], events.append) as analyser:
        lags = await feed_in_real_time(analyser, frames)
        stats = analyser.stats()
    loop_cpu = time.thread_time() - loop_cpu0
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / wall
    p99 = statistics.quantiles(lags, n=100)[98]
    decode_ms = stats.decode_seconds / stats.frames_decoded * 1000
    print(
        f"\nloop lag at 1280x720 30 fps with the analyser: max {max(lags) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, median {statistics.median(lags) * 1000:.2f} ms over {len(lags)} ticks; "
        f"process CPU {cpu * 100:.0f}% of a core; decode {decode_ms:.1f} "
        f"ms/frame, analysis {stats.analysis_seconds / max(1, stats.frames_analysed) * 1000:.1f} ms/frame "
        f"({stats.frames_analysed} analysed, {stats.frames_dropped} dropped); "
        f"event loop thread CPU {loop_cpu * 1000:.0f} ms in all\n"
        f"baseline without the analyser, same ticker: max {max(baseline) * 1000:.1f} ms, "
        f"p99 {statistics.quantiles(baseline, n=100)[98] * 1000:.1f} ms"
    )
    assert stats.frames_decoded == len(frames) and stats.frames_dropped == 0
    assert [e.value for e in events if isinstance(e, CodeDetected)] == ["SKU-LOAD-1"]
    # Decoding and reading happened off the loop: the loop thread spent less CPU in all (feeding,
    # ticking, events) than decoding alone took in the worker. The lag itself is reported, not
    # asserted: on a shared 2-core machine it measures the neighbours as much as this code
    # (quiet machine: max 8 ms, p99 2.5 ms).
    assert loop_cpu < stats.decode_seconds


class SlowReader:
    """A reader that takes 250 ms a frame: an overloaded machine, seen from the worker."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, gray: np.ndarray) -> list[Detection]:
        self.calls += 1
        time.sleep(0.25)
        return []


async def test_analysis_rate_drops_when_the_worker_falls_behind() -> None:
    frames = to_encoded_frames(encode_clip([np.roll(scene(320, 240), 4 * i, axis=1) for i in range(90)]))
    reader = SlowReader()
    settings = AnalyserSettings(analysis_fps=5.0, min_analysis_fps=0.5, backlog_high=6, queue_frames=200)
    async with StreamAnalyser(VP8, reader=reader, settings=settings) as analyser:
        await feed_in_real_time(analyser, frames)
        stats = analyser.stats()
    # 3 s of video at 5 analyses a second would need 15 reads (3.75 s of reading): the worker
    # halves the rate instead of falling further behind, and never drops an encoded frame.
    assert stats.analysis_fps < 5.0
    assert reader.calls < 15
    assert stats.frames_dropped == 0
