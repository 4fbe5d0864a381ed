"""Fan-out of encoded frames: one TrackSlot per published (participant, kind), one ForwardTrack per viewer.

A slot outlives its publisher's peer connection: viewers (and taps) attach to the slot, and a publisher
that reconnects simply becomes the slot's new source. Every queue here is bounded and drops the oldest.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .frames import EncodedFrame
from .stats import MediaCounters

# When no keyframe arrives although one is wanted, ask again this often (a PLI can be lost).
KEYFRAME_RETRY_S = 1.0
# A viewer that starts just after a keyframe went by would otherwise wait out the whole rate limit:
# once the previous request has been answered, its request goes out after this much instead.
ANSWERED_REQUEST_GAP_S = 0.1


class KeyframeSource(Protocol):
    """What a slot needs from the publisher side: a way to send a PLI, and whether it is synchronised."""

    def send_pli(self) -> Awaitable[None]: ...

    @property
    def synchronised(self) -> bool: ...


class EncodedFrameTap:
    """A bounded queue of a publisher track's encoded frames, for a recorder or an analyser.

    Never blocks the forward path: when full, the oldest frame is dropped (counted in `dropped`).
    Iterate with `async for frame in tap`, or `await tap.get()`; `close()` ends the iteration.
    """

    def __init__(self, maxsize: int, counters: MediaCounters, on_close: Callable[[EncodedFrameTap], None]):
        self._queue: deque[EncodedFrame] = deque()
        self._maxsize = maxsize
        self._counters = counters
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._on_close = on_close
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        return len(self._queue)

    def put(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
            self._counters.tap_frames_dropped += 1
        self._queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> EncodedFrame:
        """Next frame; raises EOFError once closed and drained."""
        while not self._queue:
            if self._closed:
                raise EOFError("tap closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._on_close(self)

    def __aiter__(self) -> EncodedFrameTap:
        return self

    async def __anext__(self) -> EncodedFrame:
        try:
            return await self.get()
        except EOFError:
            raise StopAsyncIteration from None


class ForwardTrack(MediaStreamTrack):
    """The outgoing track of one viewer: aiortc's sender pulls av.Packets from it and packs them.

    Timestamps are rebased so that the viewer sees one continuous stream across publisher reconnects.
    """

    def __init__(self, kind: str, maxsize: int, counters: MediaCounters, max_delay_s: float = 0.5) -> None:
        super().__init__()
        self.kind = kind
        self._max_delay = max_delay_s
        self.codec: str | None = None
        self.clock_rate = 90000 if kind == "video" else 48000
        self._time_base = fractions.Fraction(1, self.clock_rate)
        self._maxsize = maxsize
        self._queue: deque[EncodedFrame] = deque()
        self._counters = counters
        self._waiter: asyncio.Future[None] | None = None
        self.need_keyframe = kind == "video"
        self.slot: TrackSlot | None = None
        self._rebase = True
        self._offset = 0
        self._last_out_ts = 0
        self._last_out_at = 0.0
        self._inflight_at: float | None = None
        self._inflight_bytes = 0
        self.frames_sent = 0
        # The viewer's latest REMB for this stream (bits per second), if it sent one.
        self.bitrate_estimate: int | None = None
        # Set by the sender's first recv(), i.e. once ICE and DTLS are up.
        self.started = False

    def set_codec(self, codec: str, clock_rate: int) -> None:
        self.codec = codec
        self.clock_rate = clock_rate
        self._time_base = fractions.Fraction(1, clock_rate)

    def push(self, frame: EncodedFrame) -> None:
        """Called by the slot for every frame of the source; never blocks, never grows unbounded."""
        if not self.started:
            # The viewer's transport is not up yet: queueing now would only send stale media later.
            return
        if frame.codec != self.codec:
            self._counters.frames_codec_mismatch += 1
            return
        if self.need_keyframe:
            if not frame.keyframe:
                self._counters.frames_skipped_for_keyframe += 1
                return
            self.need_keyframe = False
        queue = self._queue
        if self._overflowing(frame):
            if self.kind == "video":
                # Dropping one picture breaks every later one until the next keyframe.
                self._counters.frames_dropped += len(queue)
                queue.clear()
                if not frame.keyframe:
                    self._counters.frames_skipped_for_keyframe += 1
                    self.need_keyframe = True
                    if self.slot is not None:
                        self.slot.request_keyframe()
                    return
            else:
                while self._overflowing(frame):
                    queue.popleft()
                    self._counters.frames_dropped += 1
        queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _overflowing(self, incoming: EncodedFrame) -> bool:
        """Full, or stale: a burst released at once (a retransmission filled a gap) shares one release
        time, so only a viewer that stopped draining lets the oldest fall this far behind the newest."""
        queue = self._queue
        if not queue:
            return False
        return len(queue) >= self._maxsize or incoming.received_at - queue[0].received_at > self._max_delay

    def source_changed(self) -> None:
        """The slot got a new publisher: start over on its next keyframe, keep timestamps continuous."""
        self._counters.frames_dropped += len(self._queue)
        self._queue.clear()
        self.need_keyframe = self.kind == "video"
        self._rebase = True

    async def recv(self) -> av.Packet:
        if not self.started:
            self.started = True
            if self.slot is not None:
                self.slot.request_keyframe(starting_viewer=True)
        now = time.monotonic()
        if self._inflight_at is not None:
            # The sender calls recv() again right after sending the previous frame's last packet.
            self._counters.forward_delay.observe(now - self._inflight_at)
            self._counters.frames_forwarded += 1
            self._counters.bytes_forwarded += self._inflight_bytes
            self.frames_sent += 1
            self._inflight_at = None
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.readyState != "live":
            raise MediaStreamError
        frame = self._queue.popleft()
        if self._rebase:
            if self._last_out_at:
                elapsed = max(1, int((frame.received_at - self._last_out_at) * self.clock_rate))
                self._offset = self._last_out_ts + elapsed - frame.rtp_timestamp
            else:
                self._offset = -frame.rtp_timestamp
            self._rebase = False
        pts = (frame.rtp_timestamp + self._offset) & 0xFFFFFFFF
        self._last_out_ts = pts
        self._last_out_at = frame.received_at
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.time_base = self._time_base
        self._inflight_at = frame.received_at
        self._inflight_bytes = len(frame.data)
        return packet

    def stop(self) -> None:
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class TrackSlot:
    """One published track of one participant in one session, independent of peer connections."""

    def __init__(
        self,
        kind: str,
        counters: MediaCounters,
        keyframe_min_interval_s: float,
        bitrate_floor_bps: int | None = None,
    ) -> None:
        self.kind = kind
        # None: viewers' estimates are not relayed to the publisher.
        self._bitrate_floor = bitrate_floor_bps
        self.codec: str | None = None
        self.clock_rate = 0
        self.viewers: set[ForwardTrack] = set()
        self.taps: set[EncodedFrameTap] = set()
        self.source: KeyframeSource | None = None
        self.last_rtp_at: float | None = None
        self.last_frame_wallclock: float | None = None
        self._counters = counters
        self._min_interval = keyframe_min_interval_s
        self._pli_wanted = asyncio.Event()
        self._pli_task: asyncio.Task[None] | None = None
        self._keyframe_since_request = False
        self._starting_viewer = False

    @property
    def idle(self) -> bool:
        return self.source is None and not self.viewers and not self.taps

    def deliver(self, frame: EncodedFrame) -> None:
        self.last_frame_wallclock = frame.wallclock
        if frame.keyframe:
            self._keyframe_since_request = True
        self._counters.frames_received += 1
        self._counters.bytes_received += len(frame.data)
        for viewer in self.viewers:
            viewer.push(frame)
        for tap in self.taps:
            tap.put(frame)

    def attach_source(self, source: KeyframeSource, codec: str, clock_rate: int) -> None:
        self.source = source
        self.codec = codec
        self.clock_rate = clock_rate
        self.last_rtp_at = None
        for viewer in self.viewers:
            viewer.source_changed()
        if self.kind == "video" and self._pli_task is None:
            self._pli_task = asyncio.create_task(self._run_keyframe_requests(), name="media-keyframe")
        self.request_keyframe()

    def detach_source(self, source: KeyframeSource) -> None:
        if self.source is source:
            self.source = None

    def add_viewer(self, viewer: ForwardTrack) -> None:
        viewer.slot = self
        viewer.source_changed()
        self.viewers.add(viewer)
        if viewer.started:
            self.request_keyframe()  # else its first recv() asks, once the viewer can receive

    def remove_viewer(self, viewer: ForwardTrack) -> None:
        self.viewers.discard(viewer)
        if viewer.slot is self:
            viewer.slot = None

    def viewer_bitrate_limit(self) -> int | None:
        """The lowest REMB among this slot's viewers, never below the floor; None if none reported."""
        if self._bitrate_floor is None:
            return None
        estimates = [v.bitrate_estimate for v in self.viewers if v.bitrate_estimate is not None]
        return max(self._bitrate_floor, min(estimates)) if estimates else None

    def request_keyframe(self, starting_viewer: bool = False) -> None:
        """Ask the publisher for a keyframe; coalesced and rate-limited by the slot's task."""
        if self.kind == "video":
            self._counters.keyframes_requested += 1
            if starting_viewer:
                self._starting_viewer = True
            self._pli_wanted.set()

    def _keyframe_still_wanted(self) -> bool:
        if self.source is None:
            return False
        if not self.source.synchronised:
            return True
        return any(v.need_keyframe and v.started for v in self.viewers)

    async def _run_keyframe_requests(self) -> None:
        last_sent = -1e9
        while True:
            try:
                await asyncio.wait_for(self._pli_wanted.wait(), timeout=KEYFRAME_RETRY_S)
            except TimeoutError:
                if not self._keyframe_still_wanted():
                    continue
            self._pli_wanted.clear()
            interval = self._min_interval
            if self._starting_viewer and self._keyframe_since_request:
                interval = min(interval, ANSWERED_REQUEST_GAP_S)
            wait = last_sent + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                self._pli_wanted.clear()
            source = self.source
            if source is None:
                continue
            self._starting_viewer = False
            self._keyframe_since_request = False
            last_sent = time.monotonic()
            self._counters.plis_sent += 1
            await source.send_pli()

    async def close(self) -> None:
        for tap in list(self.taps):
            tap.close()
        self.viewers.clear()
        self.source = None
        task, self._pli_task = self._pli_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
