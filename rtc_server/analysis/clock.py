"""Media time of a stream: its RTP timestamps unwrapped and converted to seconds.

Measured from `clock_base` (epoch seconds), the same origin the recorder uses for a participant's
tracks, so a code's media time points at the same instant in the recording. Without a clock base,
media time starts at 0 on the first frame.
"""

from __future__ import annotations

# A jump this much larger than the wall-clock time elapsed is a new RTP origin (publisher reconnect).
_REANCHOR_S = 5.0


class MediaClock:
    def __init__(self, clock_base: float | None = None) -> None:
        self._base = clock_base
        self._last_raw: int | None = None
        self._ticks = 0
        self._anchor_media = 0.0
        self._anchor_ticks = 0
        self._rate = 90000
        self._last_wall = 0.0
        self._last_media = 0.0

    def seconds(self, rtp_timestamp: int, clock_rate: int, wallclock: float) -> float:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        raw = rtp_timestamp & 0xFFFFFFFF
        if self._last_raw is None:
            if self._base is None:
                self._base = wallclock
            self._rate = clock_rate
            self._anchor_media = max(0.0, wallclock - self._base)
            self._anchor_ticks = 0
            self._ticks = 0
        else:
            delta = (raw - self._last_raw) & 0xFFFFFFFF
            step = delta - (1 << 32) if delta >= (1 << 31) else delta
            self._ticks += step
        self._last_raw = raw
        media = self._anchor_media + (self._ticks - self._anchor_ticks) / self._rate
        if self._last_raw is not None and self._last_wall:
            wall_step = wallclock - self._last_wall
            if abs((media - self._last_media) - wall_step) > _REANCHOR_S:
                self._anchor_media = self._last_media + max(0.0, wall_step)
                self._anchor_ticks = self._ticks
                media = self._anchor_media
        self._last_wall = wallclock
        self._last_media = media
        return media
