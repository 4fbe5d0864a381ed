"""Fan-out of encoded frames: one TrackSlot per published (participant, kind), one ForwardTrack per viewer.

A slot outlives its publisher's peer connection: viewers (and taps) attach to the slot, and a publisher
that reconnects simply becomes the slot's new source. Every queue here is bounded and drops the oldest.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .frames import EncodedFrame, packet_starts_keyframe
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


class RtpIn(Protocol):
    """The fields of aiortc's RtpPacket a ForwardTrack reads (after RTX unwrapping and depayloading)."""

    sequence_number: int
    timestamp: int
    marker: int
    ssrc: int
    payload: bytes
    padding_size: int
    _data: bytes


@dataclass(slots=True)
class OutPacket:
    """One packet as it leaves for a viewer: the publisher's payload under the viewer's numbering."""

    payload: bytes
    marker: int
    sequence_number: int
    timestamp: int
    padding_size: int
    arrival: float


def _before(seq: int, reference: int) -> bool:
    """seq precedes reference in 16-bit sequence space."""
    return ((seq - reference) & 0xFFFF) >= 0x8000


class ForwardTrack(MediaStreamTrack):
    """The outgoing track of one viewer: the publisher's RTP packets, renumbered into this viewer's stream.

    Packets leave in the order they arrive, reordered and repaired ones included, with the publisher's
    packetisation unchanged. A packet the server is still repairing upstream therefore shows up at the
    viewer as a gap it NACKs, and its late arrival as a retransmission, which its jitter buffer does
    not mistake for network jitter (holding whole frames back here did: a 3G viewer's playout delay
    doubled). Sequence numbers and timestamps are offset so that the viewer sees one continuous stream
    across publisher reconnects and keyframe resyncs; aiortc's sender keeps what is sent in its history
    and answers the viewer's NACKs from it (aiortc_tap.forward_packets does the sending).
    """

    def __init__(self, kind: str, maxsize: int, counters: MediaCounters, max_delay_s: float = 0.5) -> None:
        super().__init__()
        self.kind = kind
        self.codec: str | None = None
        self.clock_rate = 90000 if kind == "video" else 48000
        self._maxsize = maxsize
        self._max_delay = max_delay_s
        self._queue: deque[OutPacket] = deque()
        self._counters = counters
        self._waiter: asyncio.Future[None] | None = None
        self.need_keyframe = kind == "video"
        self.slot: TrackSlot | None = None
        self._in_ssrc: int | None = None
        # First input sequence number forwarded since the last (re)sync; None: not synchronised.
        self._base_seq: int | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._next_seq = secrets.randbits(16)
        self._last_out_ts = secrets.randbits(32)
        self._last_out_at = 0.0
        self.frames_sent = 0
        self._send_now: Callable[[OutPacket], bool] | None = None
        # The viewer's latest REMB for this stream (bits per second), if it sent one.
        self.bitrate_estimate: int | None = None
        # Set once the viewer's transport is up and its sender starts (see start()).
        self.started = False

    def set_codec(self, codec: str, clock_rate: int) -> None:
        self.codec = codec
        self.clock_rate = clock_rate

    def start(self, send_now: Callable[[OutPacket], bool] | None = None) -> None:
        """The viewer's sender runs (ICE and DTLS are up): from now on packets are worth forwarding.

        send_now(packet) sends synchronously where it can (False: it could not, queue it instead).
        """
        self._send_now = send_now
        if not self.started:
            self.started = True
            if self.slot is not None:
                self.slot.request_keyframe(starting_viewer=True)

    def push_packet(self, packet: RtpIn, codec: str, arrival: float) -> None:
        """Called by the slot for every packet of the source; never blocks, never grows unbounded."""
        if not self.started:
            # The viewer's transport is not up yet: queueing now would only send stale media later.
            return
        if codec != self.codec:
            self._counters.frames_codec_mismatch += packet.marker
            return
        seq = packet.sequence_number
        if packet.ssrc != self._in_ssrc:
            # A new publisher or a restarted encoder: unrelated numbering, start over on a keyframe.
            self._in_ssrc = packet.ssrc
            self._base_seq = None
            self.need_keyframe = self.kind == "video"
        base = self._base_seq
        if base is None or self.need_keyframe:
            if self.need_keyframe and not packet_starts_keyframe(codec, packet.payload, packet._data):
                self._counters.frames_skipped_for_keyframe += packet.marker
                return
            self._sync(packet, arrival)
        else:
            delta = (seq - base) & 0xFFFF
            if delta >= 0x8000:
                return  # late packet of a picture before the resync point: the viewer never had it
            if delta > 0x4000:
                # Keep the window short so that wrap-around never reads as "before the sync point".
                self._base_seq = (seq - 0x2000) & 0xFFFF
        queue = self._queue
        if queue and (len(queue) >= self._maxsize or arrival - queue[0].arrival > self._max_delay):
            # The sender stopped draining (the loop is starved or the transport stuck): what is
            # queued is stale. Video restarts on a keyframe, audio loses its oldest packets.
            if self.kind == "video":
                self._counters.frames_dropped += sum(p.marker for p in queue)
                queue.clear()
                self.need_keyframe = True
                self._base_seq = None
                if self.slot is not None:
                    self.slot.request_keyframe()
                if not packet_starts_keyframe(codec, packet.payload, packet._data):
                    self._counters.frames_skipped_for_keyframe += packet.marker
                    return
                self._sync(packet, arrival)
            else:
                while queue and (len(queue) >= self._maxsize or arrival - queue[0].arrival > self._max_delay):
                    self._counters.frames_dropped += 1
                    queue.popleft()
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        out = OutPacket(packet.payload, packet.marker, out_seq, out_ts, packet.padding_size, arrival)
        if not _before(out_seq, self._next_seq):
            self._next_seq = (out_seq + 1) & 0xFFFF
            self._last_out_ts = out_ts
            self._last_out_at = arrival
        if out.marker:
            self.frames_sent += 1
        send_now = self._send_now
        if not queue and send_now is not None and send_now(out):
            return
        queue.append(out)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _sync(self, packet: RtpIn, arrival: float) -> None:
        """Map `packet` right after the last packet sent, its timestamp after the time that passed."""
        self._seq_offset = (self._next_seq - packet.sequence_number) & 0xFFFF
        elapsed = max(1, int((arrival - self._last_out_at) * self.clock_rate)) if self._last_out_at else 1
        self._ts_offset = (self._last_out_ts + elapsed - packet.timestamp) & 0xFFFFFFFF
        self._base_seq = packet.sequence_number
        self.need_keyframe = False

    def source_changed(self) -> None:
        """The slot got a new publisher: start over on its next keyframe, keep numbering continuous."""
        self._counters.frames_dropped += sum(p.marker for p in self._queue)
        self._queue.clear()
        self._in_ssrc = None
        self._base_seq = None
        self.need_keyframe = self.kind == "video"

    async def take(self) -> deque[OutPacket]:
        """Everything queued, oldest first, once there is something (the sender's pull)."""
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
        batch, self._queue = self._queue, deque()
        return batch

    async def recv(self) -> av.Packet:
        # aiortc's own send loop (which would call this) is replaced by aiortc_tap.forward_packets.
        raise MediaStreamError("ForwardTrack is sent packet by packet, not pulled frame by frame")

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
        for tap in self.taps:
            tap.put(frame)

    def forward(self, packet: RtpIn, arrival: float) -> None:
        """Every packet of the source, as it arrives: straight on to each viewer."""
        codec = self.codec
        if codec is None:
            return
        for viewer in self.viewers:
            viewer.push_packet(packet, codec, arrival)

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
