"""Synchronous core: remux one track's encoded frames into sealed, chained segments.

Runs on a worker thread (see `TrackRecorder`); never decodes or encodes media. Memory is
bounded by one open segment's Matroska cluster plus one held-back video frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import av.error

from . import opus_head
from .bitstream import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    h264_nal_units,
    h264_parameter_sets,
    h264_sps_dimensions,
    opus_packet_samples,
    vp8_keyframe_dimensions,
)
from .chain import GENESIS
from .errors import RecordingError, RecordingWriteError, StorageFullError
from .journal import JOURNAL_FORMAT, Journal, read_journal
from .manifest import ManifestSigner, build_manifest, write_manifest
from .model import JOURNAL_NAME, MANIFEST_NAME, EncodedFrame, RecorderConfig, SegmentEntry, TrackInfo
from .sealing import make_reserve, release_reserve, seal_segment, segment_name

log = logging.getLogger(__name__)

OpenFile = Callable[[Path], IO[bytes]]
_MUX_CODEC = {"vp8": "vp8", "h264": "h264"}
TAG_TRACK = "RTC_TRACK_ID"
TAG_INDEX = "RTC_SEGMENT_INDEX"
TAG_CLOCK_BASE = "RTC_CLOCK_BASE_US"
TAG_MEDIA_START = "RTC_MEDIA_START_US"


def default_open_file(path: Path) -> IO[bytes]:
    return path.open("w+b")


@dataclass
class _Segment:
    index: int
    path: Path
    stream_file: IO[bytes]
    container: Any
    stream: Any
    start_ticks: int
    end_ticks: int
    wall_start: float
    wall_end: float
    frames: int = 0
    size_key: tuple[int, int] | None = None
    keyframe_requested: bool = False


@dataclass
class _Held:
    ticks: int
    frame: EncodedFrame


class SegmentWriter:
    """Writes frames of one track into `track_dir`; call `close()` to seal and sign."""

    def __init__(
        self,
        track_dir: Path,
        track: TrackInfo,
        signer: ManifestSigner,
        config: RecorderConfig | None = None,
        *,
        open_file: OpenFile = default_open_file,
        keyframe_wanted: Callable[[], None] | None = None,
    ) -> None:
        """`keyframe_wanted` is called (on the writing thread) when a video segment is due to
        end but no keyframe came; `open_file` exists so tests can inject I/O failures."""
        self.track_dir = Path(track_dir)
        self._keyframe_wanted = keyframe_wanted
        self.track = track
        self.config = config or RecorderConfig()
        self._signer = signer
        self._open_file = open_file
        self.track_dir.mkdir(parents=True, exist_ok=True)
        if (self.track_dir / JOURNAL_NAME).exists() or (self.track_dir / MANIFEST_NAME).exists():
            raise RecordingError(f"{self.track_dir} already holds a recording")
        self._journal = Journal(self.track_dir, fsync=self.config.fsync)
        self._rate = track.clock_rate
        self._time_base = Fraction(1, self._rate)
        self._target_ticks = round(self.config.segment_duration_s * self._rate)
        self._offset: int | None = None
        self._last_raw: int | None = None
        self._unwrap = 0
        self._last_ticks = -1
        self._held: _Held | None = None
        self._last_duration = self._rate // 30 if track.kind == "video" else 960
        self._size: tuple[int, int] | None = (
            (track.width, track.height) if track.width and track.height else None
        )
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._segment: _Segment | None = None
        self._next_index = 0
        self._chain = GENESIS
        self._header_written = False
        # Entries live in the journal, not in memory: a long recording must not grow the heap.
        self.segment_count = 0
        self.last_segment: SegmentEntry | None = None
        self._sealed_now: list[SegmentEntry] = []
        self.dropped_frames = 0
        self.bytes_written = 0
        self.error: RecordingError | None = None
        self.manifest: dict[str, Any] | None = None
        try:
            make_reserve(self.track_dir, self.config.reserve_bytes)
        except OSError as exc:
            raise self._classify(exc) from exc

    # -- public ---------------------------------------------------------------------------------

    def write(self, frame: EncodedFrame) -> list[SegmentEntry]:
        """Add one frame; returns the segments sealed by this call (usually none)."""
        if self.error is not None:
            raise self.error
        if self.manifest is not None:
            raise RecordingError("writer is closed")
        self._sealed_now = []
        try:
            self._accept(frame)
        except (OSError, av.error.FFmpegError) as exc:
            self._fail(self._classify(exc))
            raise self.error from exc  # type: ignore[misc]
        return self._sealed_now

    def close(self, reason: str = "closed") -> dict[str, Any]:
        """Seal the open segment, then write and sign the manifest. Idempotent."""
        if self.manifest is not None:
            return self.manifest
        if self.error is not None:
            raise self.error
        self._sealed_now = []
        try:
            if self._held is not None:
                held, self._held = self._held, None
                self._emit(held.ticks, held.frame, self._last_duration)
            self._seal_current()
            self._finish(reason)
        except (OSError, av.error.FFmpegError) as exc:
            self._fail(self._classify(exc))
            raise self.error from exc  # type: ignore[misc]
        assert self.manifest is not None
        return self.manifest

    def abort(self) -> None:
        """Release resources without sealing (tests simulate a crash with this)."""
        if self._segment is not None:
            with contextlib.suppress(Exception):
                self._segment.stream_file.close()
            self._segment = None
        self._journal.close()

    @property
    def segments(self) -> list[SegmentEntry]:
        """Every sealed segment, read back from the journal."""
        return read_journal(self.track_dir).segments

    @property
    def sealed_in_last_call(self) -> list[SegmentEntry]:
        return list(self._sealed_now)

    @property
    def track_json(self) -> dict[str, Any]:
        track = self.track
        if self._size is not None:
            track = dataclasses.replace(track, width=self._size[0], height=self._size[1])
        return track.to_json()

    # -- frames ---------------------------------------------------------------------------------

    def _ticks(self, frame: EncodedFrame) -> int:
        raw = frame.pts
        bits = self.config.pts_wrap_bits
        if bits is not None and self._last_raw is not None:
            half = 1 << (bits - 1)
            delta = (raw - self._last_raw) % (1 << bits)
            step = delta - (1 << bits) if delta >= half else delta
            self._unwrap += step - (raw - self._last_raw)
        self._last_raw = raw
        unwrapped = raw + self._unwrap
        if self._offset is None:
            since_base = round((frame.wallclock - self.track.clock_base) * self._rate)
            self._offset = max(since_base, 0) - unwrapped
        return unwrapped + self._offset

    def _accept(self, frame: EncodedFrame) -> None:
        ticks = self._ticks(frame)
        if self.track.kind == "audio":
            samples = opus_packet_samples(frame.data) or self._last_duration
            self._last_duration = samples
            self._emit(ticks, frame, samples)
            return
        if self._held is not None:
            duration = ticks - self._held.ticks
            if duration > 0:
                self._last_duration = duration
            held = self._held
            self._held = None
            self._emit(held.ticks, held.frame, duration if duration > 0 else self._last_duration)
        self._held = _Held(ticks, frame)

    def _learn_video(self, data: bytes) -> None:
        size: tuple[int, int] | None = None
        if self.track.codec == "vp8":
            size = vp8_keyframe_dimensions(data)
        else:
            sps, pps = h264_parameter_sets(data)
            if sps is not None:
                self._sps = sps
                with contextlib.suppress(ValueError):
                    size = h264_sps_dimensions(sps)
            if pps is not None:
                self._pps = pps
        if size is not None:
            self._size = size

    def _emit(self, ticks: int, frame: EncodedFrame, duration: int) -> None:
        if ticks <= self._last_ticks:
            self.dropped_frames += 1  # out of order or duplicate: Matroska needs rising times
            return
        segment = self._segment
        video = self.track.kind == "video"
        if video and frame.keyframe:
            self._learn_video(frame.data)
        if segment is not None:
            long_enough = ticks - segment.start_ticks >= self._target_ticks
            resized = video and frame.keyframe and self._size != segment.size_key
            if (long_enough and (frame.keyframe or not video)) or resized:
                self._seal_current()
                segment = None
            elif long_enough and not segment.keyframe_requested and self._keyframe_wanted:
                # Video can only be cut on a keyframe: ask the publisher for one (PLI).
                segment.keyframe_requested = True
                self._keyframe_wanted()
        if segment is None:
            if video and (not frame.keyframe or self._size is None):
                self.dropped_frames += 1  # nothing decodable before a keyframe
                return
            segment = self._open_segment(ticks, frame.wallclock)
        data = frame.data
        if self.track.codec == "h264" and segment.frames == 0:
            data = self._with_parameter_sets(data)
        packet = av.Packet(data)
        packet.stream = segment.stream
        packet.time_base = self._time_base
        # Segment-relative times play the same in every player; the segment's place on the
        # participant's clock is in its tags and in the chained metadata.
        packet.pts = ticks - segment.start_ticks
        packet.dts = packet.pts
        packet.duration = duration
        packet.is_keyframe = frame.keyframe or not video
        segment.container.mux(packet)
        segment.frames += 1
        segment.end_ticks = ticks + duration
        segment.wall_end = frame.wallclock
        self._last_ticks = ticks

    def _with_parameter_sets(self, data: bytes) -> bytes:
        """Prepend cached SPS/PPS to an IDR that lacks them, as WebRTC receivers do."""
        units = h264_nal_units(data)
        types = {u[0] & 0x1F for u in units}
        if (NAL_SPS in types and NAL_PPS in types) or NAL_IDR not in types:
            return data
        prefix = b"".join(b"\x00\x00\x00\x01" + u for u in (self._sps, self._pps) if u)
        return prefix + data

    # -- segments -------------------------------------------------------------------------------

    def _open_segment(self, ticks: int, wallclock: float) -> _Segment:
        if not self._header_written:
            self._write_header()
        index = self._next_index
        path = self.track_dir / (segment_name(index, self.track.extension) + ".part")
        stream_file = self._open_file(path)
        try:
            container = av.open(
                stream_file,
                "w",
                format=self.track.container_format,
                container_options={"cluster_time_limit": str(self.config.cluster_time_limit_ms)},
            )
            container.metadata.update(
                {
                    TAG_TRACK: self.track.track_id,
                    TAG_INDEX: str(index),
                    TAG_CLOCK_BASE: str(round(self.track.clock_base * 1_000_000)),
                    TAG_MEDIA_START: str(self._us(ticks)),
                }
            )
            if self.track.kind == "video":
                assert self._size is not None
                stream = container.add_mux_stream(
                    _MUX_CODEC[self.track.codec], width=self._size[0], height=self._size[1]
                )
            else:
                # An OpusHead with no pre-skip (see opus_head.py): libopus's own declared 312
                # samples, and players dropped the first 6.5 ms of every segment.
                with opus_head.template() as source:
                    stream = container.add_stream_from_template(source.streams.audio[0])
        except BaseException:
            stream_file.close()
            raise
        self._segment = _Segment(
            index=index,
            path=path,
            stream_file=stream_file,
            container=container,
            stream=stream,
            start_ticks=ticks,
            end_ticks=ticks,
            wall_start=wallclock,
            wall_end=wallclock,
            size_key=self._size,
        )
        return self._segment

    def _seal_current(self) -> None:
        segment = self._segment
        if segment is None:
            return
        try:
            segment.container.close()
            segment.stream_file.flush()
        finally:
            segment.stream_file.close()
        self._segment = None
        entry = seal_segment(
            self._journal,
            segment.path,
            segment_name(segment.index, self.track.extension),
            self._chain,
            index=segment.index,
            media_us=(self._us(segment.start_ticks), self._us(segment.end_ticks)),
            wall_us=(round(segment.wall_start * 1e6), round(segment.wall_end * 1e6)),
            frames=segment.frames,
            recovered=False,
            fsync=self.config.fsync,
        )
        self._chain = bytes.fromhex(entry.chain)
        self._next_index += 1
        self.segment_count += 1
        self.last_segment = entry
        self._sealed_now.append(entry)
        self.bytes_written += entry.size

    def _us(self, ticks: int) -> int:
        return ticks * 1_000_000 // self._rate

    def _write_header(self) -> None:
        self._journal.append({"type": "track", "format": JOURNAL_FORMAT, "track": self.track_json})
        self._header_written = True

    def _finish(self, reason: str) -> None:
        if not self._header_written:
            self._write_header()
        self._journal.append({"type": "end", "reason": reason})
        release_reserve(self.track_dir)
        manifest = build_manifest(self.track_json, self.segments, (), reason, self._signer)
        write_manifest(self.track_dir, manifest, fsync=self.config.fsync)
        self._journal.close()
        self.manifest = manifest

    # -- failure --------------------------------------------------------------------------------

    @staticmethod
    def _classify(exc: BaseException) -> RecordingError:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFullError(f"disk full while recording: {exc}")
        return RecordingWriteError(f"recording write failed: {exc}")

    def _fail(self, error: RecordingError) -> None:
        """Stop for good: drop the half-written segment, keep what was sealed, try to seal."""
        self.error = error
        segment, self._segment = self._segment, None
        self._held = None
        if segment is not None:
            with contextlib.suppress(Exception):
                segment.stream_file.close()
            with contextlib.suppress(OSError):
                segment.path.unlink()
        reason = "disk_full" if isinstance(error, StorageFullError) else "write_error"
        try:
            self._finish(reason)
        except (OSError, av.error.FFmpegError, RecordingError) as exc:
            # The journal still holds every sealed segment: `recover()` seals them later.
            log.warning("track %s: manifest not written after failure: %s", self.track.track_id, exc)
            self._journal.close()
