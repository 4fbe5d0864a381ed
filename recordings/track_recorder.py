"""asyncio face of `SegmentWriter`: non-blocking submit, a worker thread does all the I/O."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RecorderClosedError, RecordingError
from .manifest import ManifestSigner
from .model import EncodedFrame, RecorderConfig, SegmentEntry, TrackInfo
from .segment_writer import OpenFile, SegmentWriter, default_open_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSealed:
    track_id: str
    entry: SegmentEntry


@dataclass(frozen=True)
class FramesDropped:
    """The queue was full: `count` frames were discarded (one event per burst, sent when
    frames are accepted again or at close); video resumed on a keyframe."""

    track_id: str
    count: int


@dataclass(frozen=True)
class RecordingFailed:
    """The track stopped for good (e.g. `StorageFullError`); sealed segments stay valid."""

    track_id: str
    error: RecordingError


@dataclass(frozen=True)
class RecordingClosed:
    track_id: str
    manifest: dict[str, Any] | None


RecorderEvent = SegmentSealed | FramesDropped | RecordingFailed | RecordingClosed
_STOP = object()


class TrackRecorder:
    """Record one track. Create and use on the event loop; `await close()` to seal.

    `submit()` never blocks: when the bounded queue is full the frame is dropped, an event is
    raised and video frames are skipped until the next keyframe (so the recording never holds
    undecodable frames). `keyframe_needed` is then called on the loop to ask the publisher for
    one, and also when a video segment is due to end and no keyframe arrived.
    """

    def __init__(
        self,
        track_dir: Path,
        track: TrackInfo,
        signer: ManifestSigner,
        config: RecorderConfig | None = None,
        *,
        on_event: Callable[[RecorderEvent], None] | None = None,
        keyframe_needed: Callable[[], None] | None = None,
        open_file: OpenFile = default_open_file,
    ) -> None:
        self.track = track
        self.config = config or RecorderConfig()
        self._args = (Path(track_dir), track, signer, self.config, open_file)
        self._on_event = on_event
        self._keyframe_needed = keyframe_needed
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self.config.queue_frames)
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[dict[str, Any] | None] = self._loop.create_future()
        self._closing = False
        self._awaiting_keyframe = False
        self._burst = 0
        self.error: RecordingError | None = None
        self.dropped_frames = 0
        self.bytes_written = 0
        self.segment_count = 0
        self.last_segment: SegmentEntry | None = None
        self._thread = threading.Thread(target=self._run, name=f"rec-{track.track_id}", daemon=True)
        self._thread.start()

    def submit(self, frame: EncodedFrame) -> bool:
        """Queue a frame for writing; False if it was dropped."""
        if self._closing or self.error is not None:
            raise self.error or RecorderClosedError("recorder is closed")
        if self._awaiting_keyframe and not frame.keyframe:
            self._drop()
            return False
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            if self.track.kind == "video" and not self._awaiting_keyframe:
                self._awaiting_keyframe = True
                if self._keyframe_needed is not None:
                    self._keyframe_needed()
            self._drop()
            return False
        self._awaiting_keyframe = False
        self._end_burst()
        return True

    def _drop(self) -> None:
        self.dropped_frames += 1
        self._burst += 1

    def _end_burst(self) -> None:
        if self._burst:
            count, self._burst = self._burst, 0
            self._emit(FramesDropped(self.track.track_id, count))

    async def close(self) -> dict[str, Any] | None:
        """Seal and sign. Returns the manifest (None if the disk was too full to write one)."""
        if not self._closing:
            self._closing = True
            self._end_burst()
            # A full queue drains at disk speed; a stopped worker resolves `_done` instead.
            while not self._done.done():
                try:
                    self._queue.put_nowait(_STOP)
                    break
                except queue.Full:
                    await asyncio.sleep(0.01)
        return await asyncio.shield(self._done)

    # -- worker thread --------------------------------------------------------------------------

    def _run(self) -> None:
        manifest: dict[str, Any] | None = None
        writer: SegmentWriter | None = None
        try:
            writer = SegmentWriter(
                *self._args[:4], open_file=self._args[4], keyframe_wanted=self._want_keyframe
            )
            while (item := self._queue.get()) is not _STOP:
                assert isinstance(item, EncodedFrame)
                for entry in writer.write(item):
                    self._sealed(entry, writer)
            manifest = writer.close()
            for entry in writer.sealed_in_last_call:
                self._sealed(entry, writer)
        except RecordingError as exc:
            manifest = writer.manifest if writer is not None else None
            self._loop.call_soon_threadsafe(self._failed, exc)
        except Exception as exc:  # a bug must still release close() and stop the track
            log.exception("track %s: recorder crashed", self.track.track_id)
            self._loop.call_soon_threadsafe(self._failed, RecordingError(str(exc)))
        self._loop.call_soon_threadsafe(self._closed, manifest)

    def _want_keyframe(self) -> None:
        if self._keyframe_needed is not None:
            self._loop.call_soon_threadsafe(self._keyframe_needed)

    def _sealed(self, entry: SegmentEntry, writer: SegmentWriter) -> None:
        def apply() -> None:
            self.segment_count += 1
            self.last_segment = entry
            self.bytes_written = writer.bytes_written
            self._emit(SegmentSealed(self.track.track_id, entry))

        self._loop.call_soon_threadsafe(apply)

    # -- loop side ------------------------------------------------------------------------------

    def _failed(self, error: RecordingError) -> None:
        self.error = error
        self._emit(RecordingFailed(self.track.track_id, error))

    def _closed(self, manifest: dict[str, Any] | None) -> None:
        self._emit(RecordingClosed(self.track.track_id, manifest))
        if not self._done.done():
            self._done.set_result(manifest)

    def _emit(self, event: RecorderEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("recorder event handler failed")
