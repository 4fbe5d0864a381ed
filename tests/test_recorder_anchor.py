"""A track is placed on the participant's clock by its least-delayed early frame, not its first."""

from __future__ import annotations

from rtc_server.media import EncodedFrame
from rtc_server.recorder import _StartAnchor


def _frame(i: int, delay: float, rtp0: int = 4_294_960_000) -> EncodedFrame:
    capture = 1000.0 + i / 30
    return EncodedFrame(
        data=b"x",
        rtp_timestamp=(rtp0 + i * 3000) % (1 << 32),
        keyframe=i == 0,
        codec="VP8",
        clock_rate=90_000,
        received_at=capture + delay,
        wallclock=capture + delay,
    )


def test_a_late_first_keyframe_does_not_shift_the_track() -> None:
    anchor = _StartAnchor()
    frames = [_frame(0, 0.110)] + [_frame(i, 0.002) for i in range(1, 30)]  # RTP wraps inside the window
    ready: list[EncodedFrame] = []
    for f in frames:
        ready += anchor.add(f)
    assert [f.rtp_timestamp for f in ready] == [f.rtp_timestamp for f in frames[: len(ready)]]
    assert ready, "the window closes after half a second"
    assert abs(ready[0].wallclock - (1000.0 + 0.002)) < 1e-6  # the first frame as if it came on time
    assert ready[1:] == frames[1 : len(ready)]
    assert anchor.add(frames[-1]) == [frames[-1]]  # afterwards frames pass straight through


def test_release_flushes_what_is_held() -> None:
    anchor = _StartAnchor()
    assert anchor.add(_frame(0, 0.05)) == []
    assert anchor.add(_frame(1, 0.01)) == []
    out = anchor.release()
    assert len(out) == 2 and abs(out[0].wallclock - 1000.01) < 1e-6
    assert _StartAnchor().release() == []
