"""Media time from RTP timestamps."""

from __future__ import annotations

import pytest

from rtc_server.analysis.clock import MediaClock


def test_unwraps_and_counts_from_clock_base() -> None:
    clock = MediaClock(clock_base=1000.0)
    start = 2**32 - 9000  # wraps after 0.1 s
    assert clock.seconds(start, 90000, 1002.0) == pytest.approx(2.0)
    assert clock.seconds((start + 9000) & 0xFFFFFFFF, 90000, 1002.1) == pytest.approx(2.1)
    assert clock.seconds((start + 90000) & 0xFFFFFFFF, 90000, 1003.0) == pytest.approx(3.0)
    # A reordered (earlier) timestamp goes back, not forward by 13 hours.
    assert clock.seconds((start + 87000) & 0xFFFFFFFF, 90000, 1003.0) == pytest.approx(2.9667, abs=1e-3)


def test_without_clock_base_starts_at_zero() -> None:
    clock = MediaClock()
    assert clock.seconds(123456, 90000, 5000.0) == 0.0
    assert clock.seconds(123456 + 45000, 90000, 5000.5) == pytest.approx(0.5)


def test_new_rtp_origin_continues_from_wall_clock() -> None:
    clock = MediaClock()
    clock.seconds(1000, 90000, 100.0)
    assert clock.seconds(1000 + 90000, 90000, 101.0) == pytest.approx(1.0)
    # Publisher reconnected 2 s later with a random new timestamp origin.
    assert clock.seconds(3_000_000_000, 90000, 103.0) == pytest.approx(3.0)
    assert clock.seconds(3_000_000_000 + 9000, 90000, 103.1) == pytest.approx(3.1)


def test_bad_clock_rate() -> None:
    with pytest.raises(ValueError):
        MediaClock().seconds(0, 0, 0.0)
