"""StreamAnalyser: the facade the server wires between a media tap and the sessions service.

    analyser = StreamAnalyser("VP8", checklist=["4006381333931"], on_event=publish,
                              request_keyframe=lambda: media.request_keyframe(sid, pid),
                              clock_base=recording_clock_base)   # media times match the recording
    dropped = tap.dropped
    async for frame in tap:          # rtc_server.media EncodedFrameTap (video)
        if tap.dropped != dropped:   # the tap lost frames: the decoder must resync on a keyframe
            dropped = tap.dropped
            analyser.notify_gap()
        analyser.feed(frame)         # never blocks: decoding happens in the worker thread
    still = await analyser.snapshot()
    await analyser.close()

Events (`on_event`, called on the event loop): CodeDetected for each new sighting of a code (repeats
within `repeat_window_s` collapse; checklist matching done here), QualityHint when a hint turns on
or off. Construct it inside a running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .checklist import Checklist, Sightings
from .clock import MediaClock
from .codes import CodeReader, make_reader
from .decoder import EncodedVideoFrame, codec_name
from .errors import AnalyserClosed, NoPicture
from .events import AnalysisEvent, Detection, HintName, QualityHint
from .settings import AnalyserSettings
from .stills import Still, encode_still
from .worker import AnalyserStats, AnalysisWorker, WorkerSink

log = logging.getLogger(__name__)


class StreamAnalyser:
    """Analyses one video stream (one participant's video track) of one session."""

    def __init__(
        self,
        codec: str,
        checklist: Checklist | Iterable[str] | Mapping[str, int | None] = (),
        on_event: Callable[[AnalysisEvent], None] | None = None,
        request_keyframe: Callable[[], object] | None = None,
        settings: AnalyserSettings | None = None,
        *,
        clock_base: float | None = None,
        reader: CodeReader | None = None,
        name: str = "analyser",
    ) -> None:
        codec_name(codec)  # UnsupportedCodec before a thread is started
        self.settings = settings or AnalyserSettings()
        self.checklist = checklist if isinstance(checklist, Checklist) else Checklist(checklist)
        self._sightings = Sightings(
            self.checklist, self.settings.repeat_window_s, self.settings.confirm_reads_linear
        )
        self._on_event = on_event
        self._request_keyframe = request_keyframe
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._fed_seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._hints: set[HintName] = set()
        # Media time is computed here, on the loop, for every frame fed: dropped frames keep the
        # clock continuous.
        self._clock = MediaClock(clock_base)
        sink = WorkerSink(self._on_codes, self._on_hints, self._on_keyframe_needed, self._on_progress)
        self._worker = AnalysisWorker(
            codec,
            reader or make_reader(self.settings.reader, self.settings.formats),
            self.settings,
            self._post,
            sink,
            name=name,
        )

    # --- public API --------------------------------------------------------------------------------

    def feed(self, frame: EncodedVideoFrame) -> bool:
        """Hand over one encoded frame (in stream order). Returns False once closed."""
        if self._closed:
            return False
        media_time = self._clock.seconds(frame.rtp_timestamp, frame.clock_rate, frame.wallclock)
        self._fed_seq = self._worker.put(frame, media_time)
        return True

    def notify_gap(self) -> None:
        """Frames were lost before the next one fed (e.g. the tap's `dropped` grew)."""
        if not self._closed:
            self._worker.mark_gap()

    async def snapshot(self) -> Still:
        """The latest picture at the stream's full resolution, waiting (up to snapshot_wait_s) for
        the frames fed before this call to be decoded. NoPicture if nothing was ever decoded."""
        if self._closed:
            raise AnalyserClosed("analyser is closed")
        target = self._fed_seq
        latest = self._worker.latest
        if target and (latest is None or latest.seq < target):
            if self._worker.waiting_for_keyframe:
                self._on_keyframe_needed()
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append((target, waiter))
            self._arm_progress()
            try:
                await asyncio.wait_for(waiter, self.settings.snapshot_wait_s)
            except TimeoutError:
                pass  # a stale picture (its media time tells how stale) beats none
            finally:
                self._waiters = [(t, w) for t, w in self._waiters if w is not waiter]
        if self._closed:
            raise AnalyserClosed("analyser closed while a still was taken")
        picture = self._worker.latest
        if picture is None:
            raise NoPicture("no video picture has been decoded yet")
        s = self.settings
        return await asyncio.to_thread(
            encode_still, picture.frame, picture.media_time, picture.wallclock, s.still_format, s.jpeg_quality
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.stop()
        await asyncio.to_thread(self._worker.join)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(AnalyserClosed("analyser closed"))
        self._waiters.clear()

    async def __aenter__(self) -> StreamAnalyser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active_hints(self) -> frozenset[HintName]:
        return frozenset(self._hints)

    def stats(self) -> AnalyserStats:
        return dataclasses.replace(self._worker.stats)

    @property
    def backlog(self) -> int:
        return self._worker.backlog

    # --- worker callbacks (run on the loop) ---------------------------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Called from the worker thread."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody listens
            self._loop.call_soon_threadsafe(fn, *args)

    def _emit(self, event: AnalysisEvent) -> None:
        if self._closed or self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("analyser: on_event failed for %s", event.type)

    def _on_codes(self, detections: list[Detection], media_time: float, wallclock: float) -> None:
        for detection in detections:
            event = self._sightings.observe(detection, media_time, wallclock)
            if event is not None:
                self._emit(event)

    def _on_hints(self, changes: list[tuple[HintName, bool]], media_time: float, wallclock: float) -> None:
        for hint, active in changes:
            (self._hints.add if active else self._hints.discard)(hint)
            self._emit(QualityHint(hint, active, media_time, wallclock))

    def _on_keyframe_needed(self) -> None:
        if self._closed or self._request_keyframe is None:
            return
        try:
            self._request_keyframe()
        except Exception:
            log.exception("analyser: request_keyframe failed")

    def _on_progress(self, seq: int) -> None:
        remaining = []
        for target, waiter in self._waiters:
            if target <= seq:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                remaining.append((target, waiter))
        self._waiters = remaining
        self._arm_progress()

    def _arm_progress(self) -> None:
        if not self._waiters:
            return
        target = min(t for t, _ in self._waiters)
        self._worker.progress_target = target
        latest = self._worker.latest
        # The worker may have passed the target before it was armed: check once more.
        if latest is not None and latest.seq >= target:
            self._worker.progress_target = None
            self._on_progress(latest.seq)
