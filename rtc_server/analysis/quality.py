"""Picture quality hints: pure measures over a grayscale frame, and a latch per hint with hysteresis.

Measures are taken on a downscaled copy so that they cost well under a millisecond and mean the same
at every stream resolution. A hint turns on only when its condition has held for `on_after_s` of media
time, and off only when the opposite condition (a wider threshold) has held for `off_after_s`, so a
borderline picture does not make the staff page flicker. Precedence, so the page shows the one thing
to fix: a covered camera silences the other hints, and a dark picture silences "blurred" (dark frames
have little detail to measure).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .events import HintName
from .settings import QualitySettings

THUMB_WIDTH = 160
SHARPNESS_WIDTH = 640


def _resize_to_width(gray: np.ndarray, width: int) -> np.ndarray:
    h, w = gray.shape[:2]
    if w <= width:
        return gray
    return cv2.resize(gray, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """A small copy for brightness, uniformity and change between frames."""
    return _resize_to_width(gray, THUMB_WIDTH)


def brightness(thumb: np.ndarray) -> float:
    """Mean luma, 0..255."""
    return float(cv2.mean(thumb)[0])


def uniformity(thumb: np.ndarray) -> float:
    """Standard deviation of luma: near zero when the lens is covered."""
    _, std = cv2.meanStdDev(thumb)
    return float(std[0, 0])


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian at a fixed width: focus and motion blur both lower it."""
    small = _resize_to_width(gray, SHARPNESS_WIDTH)
    lap = cv2.Laplacian(small, cv2.CV_16S, ksize=3)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute luma difference between two thumbnails (inf if their sizes differ)."""
    if a.shape != b.shape:
        return float("inf")
    return float(cv2.mean(cv2.absdiff(a, b))[0])


@dataclass(frozen=True, slots=True)
class FrameMeasures:
    brightness: float
    uniformity: float
    sharpness: float
    thumb: np.ndarray


def measure(gray: np.ndarray) -> FrameMeasures:
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError("expected a non-empty 2-D uint8 grayscale frame")
    thumb = thumbnail(gray)
    return FrameMeasures(brightness(thumb), uniformity(thumb), sharpness(gray), thumb)


class _Latch:
    """On after the on-condition held on_after_s; off after the off-condition held off_after_s."""

    def __init__(self, on_after_s: float, off_after_s: float) -> None:
        self.active = False
        self._on_after = on_after_s
        self._off_after = off_after_s
        self._since: float | None = None

    def update(self, want_on: bool, want_off: bool, t: float) -> bool:
        """Feed one observation; True if the state changed."""
        pending = want_off if self.active else want_on
        if not pending:
            self._since = None
            return False
        if self._since is None or t < self._since:
            self._since = t
        if t - self._since >= (self._off_after if self.active else self._on_after):
            self.active = not self.active
            self._since = None
            return True
        return False

    def force_off(self) -> bool:
        self._since = None
        if self.active:
            self.active = False
            return True
        return False


class QualityMonitor:
    """Feeds measures of analysed frames, in media-time order; returns the hints that changed."""

    def __init__(self, settings: QualitySettings) -> None:
        self.s = settings
        self._latches: dict[HintName, _Latch] = {
            name: _Latch(settings.on_after_s, settings.off_after_s)
            for name in ("covered", "too_dark", "blurred", "frozen")
        }
        self._prev_thumb: np.ndarray | None = None
        self._last_motion: float | None = None

    def active(self) -> set[HintName]:
        return {name for name, latch in self._latches.items() if latch.active}

    def update(self, m: FrameMeasures, t: float) -> list[tuple[HintName, bool]]:
        s = self.s
        changes: list[tuple[HintName, bool]] = []

        def step(name: HintName, want_on: bool, want_off: bool, suppressed: bool) -> None:
            latch = self._latches[name]
            changed = latch.force_off() if suppressed else latch.update(want_on, want_off, t)
            if changed:
                changes.append((name, latch.active))

        flat = m.uniformity < s.covered_on and m.sharpness < s.blur_on
        step("covered", flat, m.uniformity > s.covered_off or m.sharpness > s.blur_off, False)
        covered = self._latches["covered"].active
        step("too_dark", m.brightness < s.dark_on, m.brightness > s.dark_off, covered)
        dark = self._latches["too_dark"].active
        step("blurred", m.sharpness < s.blur_on, m.sharpness > s.blur_off, covered or dark)
        self._step_frozen(m, t, covered, changes)
        return changes

    def _step_frozen(
        self, m: FrameMeasures, t: float, covered: bool, changes: list[tuple[HintName, bool]]
    ) -> None:
        latch = self._latches["frozen"]
        diff = float("inf") if self._prev_thumb is None else difference(self._prev_thumb, m.thumb)
        self._prev_thumb = m.thumb
        if self._last_motion is None or t < self._last_motion:
            self._last_motion = t  # first frame, or media time restarted (publisher reconnected)
        if covered:
            if latch.force_off():
                changes.append(("frozen", False))
            self._last_motion = t
            return
        if latch.active:
            # A clearly moving picture ends "frozen" at once: there is nothing to wait for.
            if diff > self.s.frozen_off:
                latch.force_off()
                self._last_motion = t
                changes.append(("frozen", False))
            return
        if diff > self.s.frozen_on:
            self._last_motion = t
        elif t - self._last_motion >= self.s.frozen_after_s:
            latch.active = True
            changes.append(("frozen", True))
