"""ForwardTrack queues: bounded, drop-oldest, keyframe resync for video, continuous timestamps."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError

from rtc_server.media.forwarding import ForwardTrack, TrackSlot
from rtc_server.media.frames import EncodedFrame
from rtc_server.media.stats import MediaCounters


def frame(ts: int, key: bool, codec: str = "VP8", at: float = 0.0, data: bytes = b"x") -> EncodedFrame:
    return EncodedFrame(data, ts, key, codec, 90000 if codec != "opus" else 48000, at, 1000.0 + at)


def video_track(counters: MediaCounters, size: int = 4) -> ForwardTrack:
    track = ForwardTrack("video", size, counters)
    track.set_codec("VP8", 90000)
    track.started = True  # as if aiortc's sender were already pulling (transport up)
    return track


async def test_video_starts_on_a_keyframe_and_skips_other_codecs() -> None:
    counters = MediaCounters()
    track = video_track(counters)
    track.push(frame(0, False))
    track.push(frame(1, True, codec="H264"))
    assert track._queue == deque_of()
    assert counters.frames_skipped_for_keyframe == 1 and counters.frames_codec_mismatch == 1
    track.push(frame(3000, True, data=b"key"))
    packet = await track.recv()
    assert bytes(packet) == b"key" and packet.pts == 0


async def test_slow_video_viewer_drops_to_the_next_keyframe_never_queues_more() -> None:
    counters = MediaCounters()
    slot = TrackSlot("video", counters, 0.5)
    track = video_track(counters, size=4)
    slot.add_viewer(track)
    track.push(frame(0, True))
    for i in range(1, 10):
        track.push(frame(i * 3000, False))
        assert len(track._queue) <= 4
    assert track.need_keyframe and counters.keyframes_requested >= 2
    track.push(frame(99_000, False))
    assert len(track._queue) == 0
    track.push(frame(102_000, True, data=b"k2"))
    assert bytes(await track.recv()) == b"k2"
    await slot.close()


async def test_a_burst_released_at_once_is_queued_whole_but_a_stalled_viewer_resyncs() -> None:
    counters = MediaCounters()
    slot = TrackSlot("video", counters, 0.5)
    track = ForwardTrack("video", 64, counters, max_delay_s=0.5)
    track.set_codec("VP8", 90000)
    track.started = True
    slot.add_viewer(track)
    requested = counters.keyframes_requested
    track.push(frame(0, True, at=1.0))
    for i in range(1, 25):  # a retransmission filled a gap: 24 held frames leave together
        track.push(frame(i * 3000, False, at=1.4))
    assert len(track._queue) == 25 and not track.need_keyframe
    assert counters.keyframes_requested == requested and counters.frames_dropped == 0
    track.push(frame(99_000, False, at=1.6))  # nothing drained for 0.6 s: this viewer is stuck
    assert len(track._queue) == 0 and track.need_keyframe
    assert counters.keyframes_requested == requested + 1
    await slot.close()


async def test_slow_audio_viewer_drops_oldest() -> None:
    counters = MediaCounters()
    track = ForwardTrack("audio", 3, counters)
    track.set_codec("opus", 48000)
    track.started = True
    for i in range(10):
        track.push(frame(i * 960, True, codec="opus", data=bytes([i])))
    assert [f.data for f in track._queue] == [b"\x07", b"\x08", b"\x09"]
    assert counters.frames_dropped == 7


async def test_timestamps_stay_continuous_across_a_source_change() -> None:
    counters = MediaCounters()
    track = video_track(counters)
    track.push(frame(1_000_000, True, at=10.0))
    track.push(frame(1_003_000, False, at=10.033))
    assert (await track.recv()).pts == 0
    assert (await track.recv()).pts == 3000
    track.source_changed()  # new publisher, unrelated RTP timestamps
    track.push(frame(7, False, at=10.5))
    track.push(frame(9, True, at=10.6))
    pts = (await track.recv()).pts
    assert pts is not None and abs(pts - (3000 + 0.567 * 90000)) <= 1, "gap follows wall-clock time"
    assert counters.frames_forwarded == 2  # the third is still in flight


async def test_recv_ends_when_the_track_stops() -> None:
    track = video_track(MediaCounters())
    waiter = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiter


def deque_of() -> object:
    from collections import deque

    return deque()


async def test_nothing_is_queued_before_the_viewer_can_receive_and_its_first_pull_asks_for_a_keyframe() -> (
    None
):
    counters = MediaCounters()
    slot = TrackSlot("video", counters, 0.5)
    track = ForwardTrack("video", 4, counters)
    track.set_codec("VP8", 90000)
    slot.add_viewer(track)
    assert counters.keyframes_requested == 0, "no keyframe is wasted on a viewer still connecting"
    track.push(frame(0, True))
    track.push(frame(3000, False))
    assert len(track._queue) == 0
    pulling = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    assert track.started and counters.keyframes_requested == 1
    track.push(frame(6000, True, data=b"fresh"))
    assert bytes(await pulling) == b"fresh"
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
