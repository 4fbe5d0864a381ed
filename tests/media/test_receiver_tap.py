"""ReceiverTap on a stand-in receiver: frames to the sink, NACKs retried while a hole stays open."""

from __future__ import annotations

import asyncio

from rtc_server.media.aiortc_tap import ReceiverTap
from rtc_server.media.frames import EncodedFrame
from rtc_server.media.stats import MediaCounters
from tests.media.test_assembler import VP8_DELTA, VP8_KEY, vp8_frame, vp8_picture


class FakeReceiver:
    def __init__(self) -> None:
        self.nacks: list[list[int]] = []
        self.plis: list[int] = []

    async def _send_rtcp_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self.nacks.append(lost)

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


async def test_nacks_are_retried_until_the_hole_is_filled() -> None:
    receiver = FakeReceiver()
    frames: list[EncodedFrame] = []
    tap = ReceiverTap(receiver, "VP8", 90000, frames.append, MediaCounters(), 1.0, 0.02)  # type: ignore[arg-type]
    tap.start()
    try:
        for p in vp8_frame(10, 0, VP8_KEY + b"k" * 30):
            assert tap.add(p) == (False, None)
        f1 = vp8_frame(13, 3000, VP8_DELTA + b"d" * 30)
        tap.add(f1[0])
        tap.add(f1[2])  # 14 lost
        assert tap.last_rtp_at is not None and len(frames) == 1
        await asyncio.sleep(0.1)
        assert len(receiver.nacks) >= 2 and all(n == [14] for n in receiver.nacks)
        tap.add(f1[1])  # the retransmission arrives
        assert len(frames) == 2 and frames[1].data == VP8_DELTA + b"d" * 30
        count = len(receiver.nacks)
        await asyncio.sleep(0.1)
        assert len(receiver.nacks) <= count + 1, "no more NACKs once nothing is missing"
        await tap.send_pli()
        assert receiver.plis == [1]
    finally:
        await tap.stop()
    assert tap._retry_task is None


async def test_new_ssrc_resets_the_assembler() -> None:
    frames: list[EncodedFrame] = []
    tap = ReceiverTap(FakeReceiver(), "VP8", 90000, frames.append, MediaCounters(), 1.0, 0.02)  # type: ignore[arg-type]
    for p in vp8_frame(5000, 0, VP8_KEY + b"k" * 30):
        tap.add(p)
    # Same numbers range ahead but a half-received frame is pending from the old SSRC.
    tap.add(vp8_frame(5003, 3000, VP8_DELTA + b"x" * 30)[0])
    new_key = VP8_KEY + b"n" * 30
    for p in vp8_frame(5004, 90, new_key):
        p.ssrc = 2
        tap.add(p)
    assert [f.data for f in frames][-1] == new_key


async def test_reorder_wait_follows_the_measured_round_trip_within_bounds() -> None:
    import time

    tap = ReceiverTap(FakeReceiver(), "VP8", 90000, [].append, MediaCounters(), 0.25, 0.02, 1.2)  # type: ignore[arg-type]
    for p in vp8_frame(10, 0, VP8_KEY + b"k" * 30):
        tap.add(p)
    assert tap.reorder_wait_s == 0.25 and tap.rtt_s is None
    f1 = vp8_frame(13, 3000, VP8_DELTA + b"d" * 30)
    tap.add(f1[0])
    tap.add(f1[2])
    tap.note_nacked([14])
    await asyncio.sleep(0.15)
    tap.note_nacked([14])  # a retry does not restart the sample
    tap.add(f1[1])
    assert tap.rtt_s is not None and 0.14 <= tap.rtt_s < 0.5
    assert tap.reorder_wait_s == 2.5 * tap.rtt_s + 0.05, "room for one retry on a slow link"
    f2 = vp8_frame(16, 6000, VP8_DELTA + b"e" * 30)
    tap.add(f2[0])
    tap.add(f2[2])
    tap.note_nacked([17])
    tap._nacked[17] = time.monotonic() - 3.0  # a 3 s round trip: the wait stops at its ceiling
    tap.add(f2[1])
    assert tap.reorder_wait_s == 1.2


async def test_reorder_wait_never_drops_below_its_floor() -> None:
    tap = ReceiverTap(FakeReceiver(), "VP8", 90000, [].append, MediaCounters(), 0.25, 0.02, 1.2)  # type: ignore[arg-type]
    for p in vp8_frame(10, 0, VP8_KEY + b"k" * 30):
        tap.add(p)
    f1 = vp8_frame(13, 3000, VP8_DELTA + b"d" * 30)
    tap.add(f1[0])
    tap.note_nacked([14])
    tap.add(f1[1])  # only reordered: arrived straight after the ask
    assert tap.reorder_wait_s == 0.25


def test_viewers_get_a_stand_in_for_a_hole_that_held_no_picture() -> None:
    """A parity packet lost on the way in is never retransmitted: a viewer would count it lost and
    NACK it again and again. It gets an empty packet in its place, which browsers take as padding."""
    frames: list[EncodedFrame] = []
    forwarded: list[tuple[int, int, bytes]] = []
    tap = ReceiverTap(
        FakeReceiver(),  # type: ignore[arg-type]
        "VP8",
        90000,
        frames.append,
        MediaCounters(),
        1.0,
        0.02,
        packet_sink=lambda p, _now: forwarded.append((p.sequence_number, p.payload_type, p.payload)),
    )
    for p in vp8_picture(100, 0, 7, VP8_KEY + b"k" * 30):
        tap.add(p)
    for p in vp8_picture(104, 3000, 8, VP8_DELTA + b"d" * 30):  # 102 and 103 lost
        tap.add(p)
    assert len(frames) == 2
    assert [seq for seq, _, _ in forwarded] == [100, 101, 104, 102, 103, 105]
    assert [(pt, payload) for seq, pt, payload in forwarded if seq in (102, 103)] == [(96, b""), (96, b"")]
    # A hole inside a picture is a lost part of it: no stand-in, the retransmission is awaited.
    for p in vp8_picture(106, 6000, 9, VP8_DELTA + b"e" * 30, parts=3)[::2]:
        tap.add(p)
    assert [seq for seq, _, _ in forwarded][6:] == [106, 108]
