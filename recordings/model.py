"""Plain data shared by the writer, the journal, the manifest and the verifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import UnsupportedCodecError

Codec = Literal["vp8", "h264", "opus"]
Kind = Literal["audio", "video"]

CLOCK_RATES: dict[str, int] = {"vp8": 90_000, "h264": 90_000, "opus": 48_000}
KINDS: dict[str, Kind] = {"vp8": "video", "h264": "video", "opus": "audio"}
# Chromium plays VP8/Opus from WebM; H.264 is not allowed in WebM, so it goes in Matroska.
CONTAINERS: dict[str, tuple[str, str]] = {
    "vp8": ("webm", ".webm"),
    "opus": ("webm", ".webm"),
    "h264": ("matroska", ".mkv"),
}

MANIFEST_FORMAT = "rtc-server.recording-manifest/1"
JOURNAL_NAME = "journal.jsonl"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as it left the jitter buffer.

    `pts` is in the codec's clock (90 kHz video, 48 kHz Opus) and may be a raw 32-bit RTP
    timestamp: the writer unwraps it. `wallclock` is epoch seconds, ideally the capture time
    derived from RTCP sender reports, otherwise the arrival time.
    """

    data: bytes
    pts: int
    keyframe: bool
    wallclock: float


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """Identity of one recorded track.

    `clock_base` (epoch seconds) must be the same for every track of a participant: media times
    in all their segments are measured from it, which is what makes audio and video comparable.
    """

    track_id: str
    codec: str
    clock_base: float
    participant: str = ""
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.codec not in CLOCK_RATES:
            raise UnsupportedCodecError(f"cannot record codec {self.codec!r}")
        if not self.track_id or "/" in self.track_id or self.track_id.startswith("."):
            raise ValueError(f"bad track id {self.track_id!r}")

    @property
    def kind(self) -> Kind:
        return KINDS[self.codec]

    @property
    def clock_rate(self) -> int:
        return CLOCK_RATES[self.codec]

    @property
    def container_format(self) -> str:
        return CONTAINERS[self.codec][0]

    @property
    def extension(self) -> str:
        return CONTAINERS[self.codec][1]

    def to_json(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "participant": self.participant,
            "kind": self.kind,
            "codec": self.codec,
            "clock_rate": self.clock_rate,
            "clock_base_us": round(self.clock_base * 1_000_000),
            "container": self.container_format,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Tuning of one track's writer."""

    segment_duration_s: float = 4.0
    # Matroska clusters are buffered in memory until complete: this bounds what a crash loses
    # inside the segment being written.
    cluster_time_limit_ms: int = 1000
    queue_frames: int = 600
    # Space set aside at start so the manifest can still be written when the disk fills
    # (about 340 bytes per segment: 1 MiB covers some 3,000 segments, over 3 hours at 4 s).
    reserve_bytes: int = 1024 * 1024
    fsync: bool = True
    # RTP timestamps wrap at 2**32; None when the caller already gives monotonic pts.
    pts_wrap_bits: int | None = 32

    def __post_init__(self) -> None:
        if not 0.2 <= self.segment_duration_s <= 600:
            raise ValueError("segment_duration_s must be within 0.2..600")
        if self.queue_frames < 1:
            raise ValueError("queue_frames must be positive")
        if self.reserve_bytes < 0 or self.cluster_time_limit_ms < 10:
            raise ValueError("bad reserve_bytes or cluster_time_limit_ms")


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """What the chain and the manifest record about one sealed segment.

    Times are integers: media times in microseconds since the track's clock base, wall-clock
    times in microseconds since the Unix epoch.
    """

    index: int
    file: str
    size: int
    sha256: str
    media_start_us: int
    media_end_us: int
    wall_start_us: int
    wall_end_us: int
    frames: int
    recovered: bool
    chain: str

    def metadata(self) -> dict[str, Any]:
        """The fields hashed into the chain (everything but the hashes)."""
        return {
            "index": self.index,
            "file": self.file,
            "size": self.size,
            "media_start_us": self.media_start_us,
            "media_end_us": self.media_end_us,
            "wall_start_us": self.wall_start_us,
            "wall_end_us": self.wall_end_us,
            "frames": self.frames,
            "recovered": self.recovered,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.metadata(), "sha256": self.sha256, "chain": self.chain}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentEntry:
        fields = {
            "index": int,
            "file": str,
            "size": int,
            "sha256": str,
            "media_start_us": int,
            "media_end_us": int,
            "wall_start_us": int,
            "wall_end_us": int,
            "frames": int,
            "recovered": bool,
            "chain": str,
        }
        values: dict[str, Any] = {}
        for name, typ in fields.items():
            value = data.get(name)
            if type(value) is not typ:
                raise ValueError(f"segment field {name!r} missing or not {typ.__name__}")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DroppedSegment:
    """A segment that was being written at a crash and could not be recovered."""

    file: str
    size: int
    sha256: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "size": self.size, "sha256": self.sha256, "reason": self.reason}
