"""The analyser's worker thread: decodes every frame it is given, analyses a few a second.

A thread rather than a process because everything heavy here (libavcodec, zxing-cpp, OpenCV)
releases the GIL: the event loop keeps running while the worker decodes, and a decoded 1280x720
picture for a still needs no copy across a process boundary. Measured here, 1280x720 VP8 at 30 fps
fed in real time, analysis at 5 fps: thread 9% of a core, loop lag max 16-19 ms (p99 7-12 ms, the
same ticker without any analyser: max 10 ms); a process prototype (multiprocessing queues) 17% of a
core, loop lag max 53-172 ms, stills 100-150 ms slower. A process would isolate a crash of a native
decoder on hostile input; the media worker processes of DESIGN.md already bound that blast radius.

The loop talks to the worker through a bounded deque under a lock held for microseconds; the worker
talks back with `loop.call_soon_threadsafe` only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av

from .codes import CodeReader
from .decoder import EncodedVideoFrame, FrameDecoder, luma
from .errors import UnsupportedCodec
from .events import Detection, HintName
from .quality import QualityMonitor, measure
from .settings import AnalyserSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Picture:
    """The latest decoded picture, kept for stills. The worker never touches it once published."""

    frame: av.VideoFrame
    media_time: float
    wallclock: float
    seq: int


@dataclass(slots=True)
class AnalyserStats:
    frames_fed: int = 0
    frames_decoded: int = 0
    frames_analysed: int = 0
    # Dropped because the queue was full, and skipped while waiting for a keyframe.
    frames_dropped: int = 0
    frames_skipped: int = 0
    decode_errors: int = 0
    keyframe_requests: int = 0
    analysis_errors: int = 0
    analysis_fps: float = 0.0
    decode_seconds: float = 0.0
    analysis_seconds: float = 0.0


class WorkerSink:
    """What the worker reports, each called on the event loop thread via call_soon_threadsafe."""

    def __init__(
        self,
        on_codes: Callable[[list[Detection], float, float], None],
        on_hints: Callable[[list[tuple[HintName, bool]], float, float], None],
        on_keyframe_needed: Callable[[], None],
        on_progress: Callable[[int], None],
    ) -> None:
        self.on_codes = on_codes
        self.on_hints = on_hints
        self.on_keyframe_needed = on_keyframe_needed
        self.on_progress = on_progress


class AnalysisWorker:
    def __init__(
        self,
        codec: str,
        reader: CodeReader,
        settings: AnalyserSettings,
        post: Callable[..., Any],
        sink: WorkerSink,
        name: str = "analyser",
    ) -> None:
        self.settings = settings
        self.stats = AnalyserStats(analysis_fps=settings.analysis_fps)
        self.latest: Picture | None = None
        # Set by the loop when a still waits for frame `progress_target` to be decoded.
        self.progress_target: int | None = None
        self._decoder = FrameDecoder(codec)
        self._reader = reader
        self._quality = QualityMonitor(settings.quality)
        self._post = post
        self._sink = sink
        self._queue: deque[tuple[int, EncodedVideoFrame, float]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._gap = False
        self._closed = False
        self._seq = 0
        self._fps = settings.analysis_fps
        self._last_analysis: float | None = None
        self._last_adjust = 0.0
        self._last_keyframe_request = -1e9
        # Overflow means this worker is overloaded: each keyframe costs every viewer bandwidth, so
        # requests after overflow gaps back off (doubling, up to 16x the base interval).
        self._keyframe_interval = settings.keyframe_request_interval_s
        self._overflow = False
        self._last_overflow = -1e9
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- event loop side --------------------------------------------------------------------------

    def put(self, frame: EncodedVideoFrame, media_time: float) -> int:
        """Queue a frame (never blocks beyond a short lock); returns its sequence number."""
        with self._cond:
            self._seq += 1
            if len(self._queue) >= self.settings.queue_frames:
                self._queue.popleft()
                self.stats.frames_dropped += 1
                self._gap = True
                self._overflow = True
            self._queue.append((self._seq, frame, media_time))
            self.stats.frames_fed += 1
            self._cond.notify()
            return self._seq

    def mark_gap(self) -> None:
        """Frames were lost upstream (e.g. the tap dropped some): resync on the next keyframe."""
        with self._cond:
            self._gap = True
            self._cond.notify()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._decoder.need_keyframe

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # --- worker thread ----------------------------------------------------------------------------

    def _next(self) -> tuple[int, EncodedVideoFrame, float, bool, int] | None:
        with self._cond:
            gap_seen = False
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                if self._gap:
                    self._gap = False
                    gap_seen = True
                    if self._overflow:
                        self._overflow = False
                        self._back_off()
                    self._skip_to_keyframe()
                    if not self._queue:
                        continue
                seq, frame, media_time = self._queue.popleft()
                return seq, frame, media_time, gap_seen, len(self._queue)

    def _skip_to_keyframe(self) -> None:
        # Frames before the newest queued keyframe cannot be decoded after a gap: drop them now
        # rather than feed them to the decoder.
        last_key = None
        for i, (_, f, _) in enumerate(self._queue):
            if f.keyframe:
                last_key = i
        drop = last_key if last_key is not None else len(self._queue)
        for _ in range(drop):
            self._queue.popleft()
        self.stats.frames_skipped += drop
        self._decoder.gap()
        if last_key is None:
            self._request_keyframe()  # nothing decodable is queued: ask now, not at the next frame

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            seq, frame, media_time, gap, backlog = item
            try:
                self._handle(seq, frame, media_time, gap, backlog)
            except Exception:  # the worker must outlive any one bad frame
                self.stats.analysis_errors += 1
                log.exception("analyser: frame %d failed", seq)

    def _handle(self, seq: int, frame: EncodedVideoFrame, media_time: float, gap: bool, backlog: int) -> None:
        if gap:
            self._decoder.gap()
        codec = getattr(frame, "codec", None)
        if isinstance(codec, str) and codec.lower() != self._decoder.codec:
            # The tap outlives publisher reconnects, and a reconnected phone may pick another codec.
            try:
                self._decoder = FrameDecoder(codec)
            except UnsupportedCodec:
                self.stats.frames_skipped += 1
                return
        errors_before = self._decoder.errors
        t0 = time.perf_counter()
        pictures = self._decoder.decode(frame.data, frame.keyframe)
        self.stats.decode_seconds += time.perf_counter() - t0
        if self._decoder.errors != errors_before:
            self.stats.decode_errors += 1
        if not pictures:
            if self._decoder.need_keyframe:
                self.stats.frames_skipped += 1
                self._request_keyframe()
            return
        self.stats.frames_decoded += 1
        picture = pictures[-1]
        self.latest = Picture(picture, media_time, frame.wallclock, seq)
        target = self.progress_target
        if target is not None and seq >= target:
            # Only while a still waits: a wake-up of the loop per decoded frame would cost for nothing.
            self.progress_target = None
            self._post(self._sink.on_progress, seq)
        self._adapt_rate(backlog)
        if self._due(media_time):
            self._analyse(picture, media_time, frame.wallclock)

    def _back_off(self) -> None:
        now = time.monotonic()
        base = self.settings.keyframe_request_interval_s
        if now - self._last_overflow > 30.0:
            self._keyframe_interval = base
        else:
            self._keyframe_interval = min(16 * base, 2 * self._keyframe_interval)
        self._last_overflow = now

    def _request_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._last_keyframe_request >= self._keyframe_interval:
            self._last_keyframe_request = now
            self.stats.keyframe_requests += 1
            self._post(self._sink.on_keyframe_needed)

    def _due(self, media_time: float) -> bool:
        last = self._last_analysis
        if last is None or media_time < last or media_time - last >= 1.0 / self._fps - 1e-6:
            self._last_analysis = media_time
            return True
        return False

    def _adapt_rate(self, backlog: int) -> None:
        # AIMD on the backlog: halve the analysis rate when frames pile up, creep back when idle.
        now = time.monotonic()
        s = self.settings
        if backlog > s.backlog_high and now - self._last_adjust >= 0.5:
            self._fps = max(s.min_analysis_fps, self._fps / 2)
            self._last_adjust = now
        elif backlog <= 1 and self._fps < s.analysis_fps and now - self._last_adjust >= 2.0:
            self._fps = min(s.analysis_fps, self._fps + max(0.5, s.analysis_fps / 10))
            self._last_adjust = now
        self.stats.analysis_fps = self._fps

    def _analyse(self, picture: av.VideoFrame, media_time: float, wallclock: float) -> None:
        t0 = time.perf_counter()
        gray = luma(picture)
        detections = self._reader.read(gray)
        hints = self._quality.update(measure(gray), media_time)
        self.stats.analysis_seconds += time.perf_counter() - t0
        self.stats.frames_analysed += 1
        if detections:
            self._post(self._sink.on_codes, detections, media_time, wallclock)
        if hints:
            self._post(self._sink.on_hints, hints, media_time, wallclock)
