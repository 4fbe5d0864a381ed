"""Marker-bit frame assembly: a frame leaves the moment its last packet arrives.

aiortc's JitterBuffer hands a frame on only when the next frame's first packet arrives (one frame
interval of delay per hop); this assembler releases it at the marker bit instead. Pure logic, no I/O:
`add()` takes a depayloaded RTP packet and returns complete frames, in order, and whether a keyframe
must be requested. Frames are released strictly in order; a frame that stays incomplete longer than
`reorder_wait_s` is abandoned and the stream resumes on the next keyframe (a decoder fed a frame whose
reference is missing shows garbage, and the viewer cannot tell because senders renumber pictures).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .frames import (
    H264,
    VP8,
    EncodedFrame,
    h264_payload_starts_keyframe,
    is_keyframe,
    vp8_payload_starts_frame,
    vp8_picture_id,
)

# More buffered packets than this means something is badly wrong (a huge gap): start over.
MAX_PENDING_PACKETS = 1024
# A packet this far behind what was already released is not late: the sender restarted its numbering.
MAX_MISORDER = 1000
# Longest run of missing sequence numbers checked for holding no picture (parity packets are few).
MAX_HOLE = 16


class RtpLike(Protocol):
    """The fields of aiortc's RtpPacket the assembler reads; `_data` is the depayloaded payload."""

    sequence_number: int
    timestamp: int
    marker: int
    payload: bytes
    _data: bytes


def _seq_after(a: int, b: int) -> bool:
    """a comes after b in 16-bit sequence space."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def _far_behind(seq: int, reference: int) -> bool:
    return ((reference - seq) & 0xFFFF) > MAX_MISORDER


class AudioAssembler:
    """Audio: every packet is a frame; late or duplicate packets are dropped (no reordering delay)."""

    def __init__(self, codec: str, clock_rate: int) -> None:
        self.codec = codec
        self.clock_rate = clock_rate
        self._last_seq: int | None = None

    def reset(self) -> None:
        self._last_seq = None

    def add(self, packet: RtpLike, now: float, wallclock: float) -> tuple[list[EncodedFrame], bool]:
        seq = packet.sequence_number
        last = self._last_seq
        if last is not None and not _seq_after(seq, last) and not _far_behind(seq, last):
            return [], False
        self._last_seq = seq
        data = packet._data
        if not data:
            return [], False
        frame = EncodedFrame(data, packet.timestamp, True, self.codec, self.clock_rate, now, wallclock)
        return [frame], False


class VideoAssembler:
    """Video: in-order, marker-bit release with bounded reordering wait and keyframe resync."""

    def __init__(
        self,
        codec: str,
        clock_rate: int = 90000,
        reorder_wait_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.codec = codec
        self.clock_rate = clock_rate
        # Read on every packet; the receiver tap adapts it to the measured round trip.
        self.reorder_wait = reorder_wait_s
        self._clock = clock
        self._packets: dict[int, RtpLike] = {}
        # First sequence number of the next frame to release; None until synchronised on a keyframe.
        self._expected: int | None = None
        self._stalled_since: float | None = None
        self._highest: int | None = None
        # Set when a packet arrives beyond a hole in the sequence; the owner resets it.
        self.new_gap = False
        self.frames_abandoned = 0
        # VP8 picture ID of the last frame released: a hole before the next picture ID held no
        # picture (a lost FEC packet shares the sequence space) and is stepped over, not waited for.
        self._last_picture: tuple[int, int] | None = None
        self.holes_skipped = 0
        # Sequence numbers of the holes stepped over, for the owner to take: viewers get an empty
        # stand-in for each, or they count it as lost and NACK it for a packet that never comes.
        self.skipped_sequences: list[int] = []

    @property
    def synchronised(self) -> bool:
        return self._expected is not None

    def add(self, packet: RtpLike, now: float, wallclock: float) -> tuple[list[EncodedFrame], bool]:
        seq = packet.sequence_number
        expected = self._expected
        if expected is not None and seq != expected and _seq_after(expected, seq):
            if not _far_behind(seq, expected):
                return [], False  # late retransmission or duplicate of something already released
            self.reset()  # the sender restarted its sequence numbers: resynchronise on a keyframe
        highest = self._highest
        if highest is None or _seq_after(seq, highest):
            if highest is not None and seq != (highest + 1) & 0xFFFF:
                self.new_gap = True
            self._highest = seq
        if len(self._packets) >= MAX_PENDING_PACKETS:
            self._packets.clear()
            self._expected = None
            self._stalled_since = None
            return [], True
        self._packets[seq] = packet

        if self._expected is None:
            frame = self._try_sync(packet, now, wallclock) if packet.marker else None
            return ([frame] if frame is not None else []), False

        out = self._release_in_order(now, wallclock)
        if self._packets:
            if out or self._stalled_since is None:
                self._stalled_since = now
            elif now - self._stalled_since > self.reorder_wait:
                self.frames_abandoned += 1
                self._expected = None
                self._stalled_since = None
                if packet.marker:
                    frame = self._try_sync(packet, now, wallclock)
                    if frame is not None:
                        out.append(frame)
                        return out, False
                return out, True
        else:
            self._stalled_since = None
        return out, False

    def reset(self) -> None:
        """Forget everything (new SSRC, renumbered stream): wait for the next keyframe."""
        self._packets.clear()
        self._expected = None
        self._stalled_since = None
        self._highest = None
        self.new_gap = False
        self._last_picture = None

    def missing(self, limit: int = 64) -> list[int]:
        """Sequence numbers still needed to release the next frame(s), oldest first."""
        expected, highest = self._expected, self._highest
        if expected is None or highest is None or not _seq_after(highest, expected):
            return []
        span = (highest - expected) & 0xFFFF
        packets = self._packets
        out = []
        for i in range(span):
            seq = (expected + i) & 0xFFFF
            if seq not in packets:
                out.append(seq)
                if len(out) >= limit:
                    break
        return out

    def _release_in_order(self, now: float, wallclock: float) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        packets = self._packets
        while True:
            start = self._expected
            assert start is not None
            first = packets.get(start)
            # Padding-only packets (bandwidth probes) carry no frame data: step over them.
            while first is not None and not first.payload:
                del packets[start]
                start = (start + 1) & 0xFFFF
                first = packets.get(start)
            self._expected = start
            if first is None:
                after = self._next_picture_after_hole(start)
                if after is None:
                    return out
                self.holes_skipped += 1
                self.skipped_sequences.extend(
                    seq
                    for seq in (start + i & 0xFFFF for i in range((after - start) & 0xFFFF))
                    if seq not in packets
                )
                self._expected = start = after
                first = packets[start]
            timestamp = first.timestamp
            end = start
            pkt: RtpLike | None = first
            while pkt is not None and not pkt.marker:
                end = (end + 1) & 0xFFFF
                pkt = packets.get(end)
                if pkt is not None and pkt.timestamp != timestamp:
                    # The marker packet was lost and the next frame began: drop and resync.
                    pkt = None
                    break
            if pkt is None:
                return out
            out.append(self._pop_frame(start, end, timestamp, now, wallclock))
            self._expected = (end + 1) & 0xFFFF

    def _next_picture_after_hole(self, start: int) -> int | None:
        """The sequence number the next picture starts at, if the hole at `start` provably held no
        picture: the first packet after it opens the picture that follows the last one released."""
        last, highest = self._last_picture, self._highest
        if last is None or highest is None or not _seq_after(highest, start):
            return None
        packets = self._packets
        seq = start
        for _ in range(min(MAX_HOLE, (highest - start) & 0xFFFF)):
            seq = (seq + 1) & 0xFFFF
            packet = packets.get(seq)
            if packet is None or not packet.payload:
                continue  # another hole, or a parity stand-in or padding: no picture either
            if not vp8_payload_starts_frame(packet.payload):
                return None
            picture = vp8_picture_id(packet.payload)
            if picture is None or picture[1] != last[1] or picture[0] != (last[0] + 1) % last[1]:
                return None
            return seq
        return None

    def _try_sync(self, marker_packet: RtpLike, now: float, wallclock: float) -> EncodedFrame | None:
        """Start (or restart) on a keyframe whose last packet just arrived."""
        packets = self._packets
        end = marker_packet.sequence_number
        timestamp = marker_packet.timestamp
        start = end
        while True:
            prev = packets.get((start - 1) & 0xFFFF)
            if prev is None or prev.timestamp != timestamp:
                break
            start = (start - 1) & 0xFFFF
        first = packets[start]
        if not self._starts_keyframe(first):
            self._discard_through(end)
            return None
        frame = self._pop_frame(start, end, timestamp, now, wallclock)
        if not frame.keyframe:
            self._discard_through(end)
            return None
        self._discard_through(end)
        self._expected = (end + 1) & 0xFFFF
        return frame

    def _starts_keyframe(self, first: RtpLike) -> bool:
        if self.codec == VP8:
            return (first.payload[0] & 0x1F) == 0x10 if first.payload else False
        if self.codec == H264:
            return h264_payload_starts_keyframe(first.payload)
        return True

    def _pop_frame(self, start: int, end: int, timestamp: int, now: float, wallclock: float) -> EncodedFrame:
        packets = self._packets
        parts: list[bytes] = []
        first_payload = packets[start].payload
        seq = start
        while True:
            parts.append(packets.pop(seq)._data)
            if seq == end:
                break
            seq = (seq + 1) & 0xFFFF
        data = b"".join(parts)
        if self.codec == VP8:
            self._last_picture = vp8_picture_id(first_payload)
        return EncodedFrame(
            data, timestamp, is_keyframe(self.codec, data), self.codec, self.clock_rate, now, wallclock
        )

    def _discard_through(self, end: int) -> None:
        """Forget buffered packets at or before `end` (they can no longer be released in order)."""
        for seq in [s for s in self._packets if s == end or _seq_after(end, s)]:
            del self._packets[seq]
