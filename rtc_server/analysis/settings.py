"""Typed configuration of the stream analyser."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

StillFormat = Literal["png", "jpeg"]


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """Thresholds of the quality hints, on 0..255 luma. Each hint turns on past `*_on` and off only
    past the wider `*_off` bound, and only after holding for on_after_s / off_after_s of media time,
    so that a hint does not flap on a borderline picture."""

    dark_on: float = 40.0
    dark_off: float = 55.0
    # Variance of the Laplacian at 640 pixels wide: a lit scene through VP8 measures hundreds or
    # more; a Gaussian defocus of sigma 2 (at 640 wide) about 50-80.
    blur_on: float = 60.0
    blur_off: float = 100.0
    # Standard deviation of the downscaled luma, together with no detail (sharpness under blur_on):
    # a finger or a lens cap leaves a flat picture; a dark room still has some spread (about 4).
    covered_on: float = 3.0
    covered_off: float = 6.0
    # Mean absolute difference between consecutive analysed frames (downscaled).
    frozen_on: float = 0.35
    frozen_off: float = 1.0
    frozen_after_s: float = 3.0
    on_after_s: float = 1.0
    off_after_s: float = 1.0


@dataclass(frozen=True, slots=True)
class AnalyserSettings:
    """Everything the analyser is told from outside."""

    # Analysis (code reading, quality) runs on this many frames per media second at most; the
    # worker lowers it, down to min_analysis_fps, when it falls behind, and raises it back.
    analysis_fps: float = 5.0
    min_analysis_fps: float = 0.5
    # Encoded frames waiting for the worker; when full the oldest is dropped and the decoder waits
    # for the next keyframe (frames after a gap cannot be decoded correctly).
    queue_frames: int = 90
    # Backlog (frames) above which the analysis rate is halved.
    backlog_high: int = 8
    # At most one keyframe request per interval (the media engine rate-limits too).
    keyframe_request_interval_s: float = 1.0
    # The same code seen again within this many media seconds is the same sighting.
    repeat_window_s: float = 5.0
    # A 1D code must be read in this many analysed frames of one sighting before it is reported
    # (QR and other matrix codes carry error correction: one read suffices).
    confirm_reads_linear: int = 2
    # Code formats to read (snake_case names as in events), empty = every format the reader knows.
    formats: tuple[str, ...] = ("qr_code", "ean_13", "ean_8", "upc_a", "upc_e", "code_128", "code_39")
    # "hybrid": zxing-cpp for every format, OpenCV's BarcodeDetector as a second opinion on EAN/UPC
    # (bench/codes_read.py: most codes read, no false read added); "zxing" alone is cheaper.
    reader: Literal["zxing", "hybrid", "opencv"] = "hybrid"
    still_format: StillFormat = "png"
    jpeg_quality: int = 92
    # How long snapshot() waits for the worker to decode the frames fed before the request.
    snapshot_wait_s: float = 2.0
    quality: QualitySettings = QualitySettings()

    def __post_init__(self) -> None:
        if not 0 < self.min_analysis_fps <= self.analysis_fps:
            raise ValueError("need 0 < min_analysis_fps <= analysis_fps")
        if self.queue_frames < 2 or self.backlog_high < 1:
            raise ValueError("queue_frames must be >= 2 and backlog_high >= 1")
        if self.repeat_window_s < 0 or self.snapshot_wait_s <= 0:
            raise ValueError("repeat_window_s must be >= 0 and snapshot_wait_s > 0")
        if self.confirm_reads_linear < 1:
            raise ValueError("confirm_reads_linear must be >= 1")
        if self.reader not in ("zxing", "hybrid", "opencv"):
            raise ValueError(f"unknown reader {self.reader!r}")
        if self.still_format not in ("png", "jpeg"):
            raise ValueError(f"unknown still format {self.still_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be within 1..100")

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> AnalyserSettings:
        """Build from a config section (`[analysis]`, with an optional `[analysis.quality]`); unknown
        keys are refused loudly."""
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown analysis settings: {sorted(unknown)}")
        values = dict(raw)
        if "quality" in values:
            q = values["quality"]
            if not isinstance(q, dict):
                raise ValueError("analysis.quality must be a table")
            q_known = {f.name for f in fields(QualitySettings)}
            q_unknown = set(q) - q_known
            if q_unknown:
                raise ValueError(f"unknown analysis.quality settings: {sorted(q_unknown)}")
            values["quality"] = QualitySettings(**{k: float(v) for k, v in q.items()})
        if "formats" in values:
            values["formats"] = tuple(values["formats"])
        return cls(**values)
