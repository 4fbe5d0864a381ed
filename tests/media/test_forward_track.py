"""ForwardTrack: packets renumbered into one continuous stream per viewer, keyframe resync for video,
bounded and never stale; TrackSlot keyframe requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiortc.mediastreams import MediaStreamError

from rtc_server.media.forwarding import ForwardTrack, OutPacket, TrackSlot
from rtc_server.media.frames import EncodedFrame
from rtc_server.media.stats import MediaCounters

VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"
VP8_DELTA = b"\x31\x02\x00"


def frame(ts: int, key: bool, codec: str = "VP8", at: float = 0.0, data: bytes = b"x") -> EncodedFrame:
    return EncodedFrame(data, ts, key, codec, 90000 if codec != "opus" else 48000, at, 1000.0 + at)


@dataclass
class Pkt:
    sequence_number: int
    timestamp: int
    marker: int
    payload: bytes
    _data: bytes
    ssrc: int = 1
    padding_size: int = 0


def vp8(seq: int, ts: int, key: bool, first: bool = True, marker: bool = True, ssrc: int = 1) -> Pkt:
    body = (VP8_KEY if key else VP8_DELTA) if first else b"more"
    return Pkt(seq & 0xFFFF, ts, int(marker), (b"\x10" if first else b"\x00") + body, body, ssrc)


def video_track(counters: MediaCounters, size: int = 64, max_delay_s: float = 0.5) -> ForwardTrack:
    track = ForwardTrack("video", size, counters, max_delay_s)
    track.set_codec("VP8", 90000)
    track.started = True  # as if aiortc's sender were already running (transport up)
    return track


def queued(track: ForwardTrack) -> list[OutPacket]:
    return list(track._queue)


async def test_video_starts_on_a_keyframe_and_skips_other_codecs() -> None:
    counters = MediaCounters()
    track = video_track(counters)
    track.push_packet(vp8(10, 0, key=False), "VP8", 0.0)
    track.push_packet(vp8(11, 3000, key=True), "H264", 0.0)
    assert queued(track) == []
    assert counters.frames_skipped_for_keyframe == 1 and counters.frames_codec_mismatch == 1
    track.push_packet(vp8(12, 6000, key=True, marker=False), "VP8", 0.0)
    track.push_packet(vp8(13, 6000, key=True, first=False), "VP8", 0.0)
    out = await track.take()
    assert [p.payload for p in out] == [b"\x10" + VP8_KEY, b"\x00more"]
    assert (out[1].sequence_number - out[0].sequence_number) & 0xFFFF == 1
    assert out[0].timestamp == out[1].timestamp and [p.marker for p in out] == [0, 1]


async def test_packets_leave_in_arrival_order_with_gaps_kept_for_the_viewer_to_nack() -> None:
    counters = MediaCounters()
    track = video_track(counters)
    for p in (vp8(100, 0, True), vp8(101, 3000, False, marker=False), vp8(103, 6000, False)):
        track.push_packet(p, "VP8", 0.0)
    track.push_packet(vp8(102, 3000, False, first=False), "VP8", 0.2)  # repaired upstream, late
    out = await track.take()
    base = out[0].sequence_number
    assert [(p.sequence_number - base) & 0xFFFF for p in out] == [0, 1, 3, 2]
    assert [p.timestamp - out[0].timestamp for p in out] == [0, 3000, 6000, 3000]
    track.push_packet(vp8(99, 0, False), "VP8", 0.3)  # older than where this viewer started: dropped
    assert queued(track) == []


async def test_numbering_stays_continuous_across_a_new_publisher() -> None:
    counters = MediaCounters()
    track = video_track(counters)
    track.push_packet(vp8(500, 1_000_000, True), "VP8", 10.0)
    track.push_packet(vp8(501, 1_003_000, False), "VP8", 10.033)
    first = await track.take()
    track.source_changed()  # new publisher: unrelated numbering and timestamps
    track.push_packet(vp8(7, 5, False, ssrc=9), "VP8", 10.5)  # not a keyframe: skipped
    track.push_packet(vp8(8, 9, True, ssrc=9), "VP8", 10.6)
    out = await track.take()
    assert len(out) == 1
    assert out[0].sequence_number == (first[-1].sequence_number + 1) & 0xFFFF
    gap = (out[0].timestamp - first[-1].timestamp) & 0xFFFFFFFF
    assert abs(gap - 0.567 * 90000) <= 1, "the timestamp gap follows wall-clock time"


async def test_a_new_ssrc_from_the_same_publisher_resyncs_on_its_keyframe() -> None:
    track = video_track(MediaCounters())
    track.push_packet(vp8(40_000, 0, True), "VP8", 0.0)
    before = await track.take()
    track.push_packet(vp8(3, 10, False, ssrc=2), "VP8", 0.1)  # encoder restarted: wait for its keyframe
    assert queued(track) == []
    track.push_packet(vp8(4, 20, True, ssrc=2), "VP8", 0.2)
    assert queued(track)[0].sequence_number == (before[0].sequence_number + 1) & 0xFFFF


async def test_sequence_wrap_around_is_not_mistaken_for_late_packets() -> None:
    track = video_track(MediaCounters(), size=100_000, max_delay_s=1e9)
    track.push_packet(vp8(65_000, 0, True), "VP8", 0.0)
    for i in range(1, 70_000):
        track.push_packet(vp8(65_000 + i, 3000 * i, False), "VP8", 0.0)
    assert len(queued(track)) == 70_000


async def test_a_stalled_video_viewer_restarts_on_a_keyframe_and_never_holds_stale_packets() -> None:
    counters = MediaCounters()
    slot = TrackSlot("video", counters, 0.5)
    track = video_track(counters, size=1024, max_delay_s=0.5)
    slot.add_viewer(track)
    requested = counters.keyframes_requested
    track.push_packet(vp8(1, 0, True), "VP8", 1.0)
    for i in range(2, 30):  # a burst arriving at once is fine
        track.push_packet(vp8(i, 3000 * i, False), "VP8", 1.4)
    assert len(queued(track)) == 29 and not track.need_keyframe
    assert counters.keyframes_requested == requested and counters.frames_dropped == 0
    track.push_packet(vp8(30, 90_000, False), "VP8", 1.6)  # nothing drained for 0.6 s: stuck
    assert queued(track) == [] and track.need_keyframe
    assert counters.keyframes_requested == requested + 1 and counters.frames_dropped == 29
    track.push_packet(vp8(31, 93_000, False), "VP8", 1.7)
    assert queued(track) == []
    track.push_packet(vp8(32, 96_000, True), "VP8", 1.8)
    assert len(queued(track)) == 1
    small = video_track(counters, size=4, max_delay_s=10)
    small.push_packet(vp8(1, 0, True), "VP8", 0.0)
    for i in range(2, 10):
        small.push_packet(vp8(i, 3000 * i, False), "VP8", 0.0)
        assert len(queued(small)) <= 4
    await slot.close()


async def test_slow_audio_viewer_drops_oldest() -> None:
    counters = MediaCounters()
    track = ForwardTrack("audio", 3, counters)
    track.set_codec("opus", 48000)
    track.started = True
    for i in range(10):
        track.push_packet(Pkt(i, i * 960, 1, bytes([i]), bytes([i])), "opus", 0.0)
    assert [p.payload for p in queued(track)] == [b"\x07", b"\x08", b"\x09"]
    assert counters.frames_dropped == 7


async def test_take_ends_when_the_track_stops_and_recv_is_never_the_path() -> None:
    track = video_track(MediaCounters())
    waiter = asyncio.create_task(track.take())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiter
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_nothing_is_queued_before_the_viewer_can_receive_and_its_start_asks_for_a_keyframe() -> None:
    counters = MediaCounters()
    slot = TrackSlot("video", counters, 0.5)
    track = ForwardTrack("video", 64, counters)
    track.set_codec("VP8", 90000)
    slot.add_viewer(track)
    assert counters.keyframes_requested == 0, "no keyframe is wasted on a viewer still connecting"
    slot.codec = "VP8"
    slot.forward(vp8(1, 0, True), 0.0)
    assert queued(track) == []
    track.start()
    assert track.started and counters.keyframes_requested == 1
    slot.forward(vp8(2, 3000, True), 0.1)
    assert [p.payload for p in queued(track)] == [b"\x10" + VP8_KEY]
    await slot.close()


class FakeSource:
    def __init__(self) -> None:
        self.plis: list[float] = []
        self.synchronised = True

    async def send_pli(self) -> None:
        import time

        self.plis.append(time.monotonic())


async def test_keyframe_requests_are_rate_limited_except_a_starting_viewers_after_an_answer() -> None:
    counters = MediaCounters()
    slot = TrackSlot("video", counters, keyframe_min_interval_s=0.5)
    source = FakeSource()
    slot.attach_source(source, "VP8", 90000)  # asks at once
    await asyncio.sleep(0.05)
    assert len(source.plis) == 1
    for _ in range(5):  # a burst from viewers: held back by the rate limit
        slot.request_keyframe()
    await asyncio.sleep(0.2)
    assert len(source.plis) == 1
    await asyncio.sleep(0.4)
    assert len(source.plis) == 2, "the burst is coalesced into one request after the interval"
    slot.deliver(frame(0, True))  # that request is answered
    slot.request_keyframe(starting_viewer=True)  # a viewer starts just after the keyframe went by
    await asyncio.sleep(0.2)
    assert len(source.plis) == 3 and source.plis[2] - source.plis[1] < 0.3
    slot.request_keyframe(starting_viewer=True)  # no keyframe since: the regular limit applies
    await asyncio.sleep(0.05)
    assert len(source.plis) == 3
    await slot.close()
