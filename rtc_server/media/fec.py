"""RED unwrapping (RFC 2198) and ULPFEC recovery (RFC 5109) for a browser publisher's video.

When the answer offers red and ulpfec, Chromium sends every VP8 packet inside RED and adds ULPFEC
packets (XOR parity over a few media packets, in the same sequence-number space) at a rate it sets
from the loss the server reports. A packet lost on the publisher's uplink is then rebuilt here as
soon as the parity after it arrives, instead of a round trip later by retransmission: 300 ms on a
poor mobile link, which is the difference between a live picture and a stalled one.

Viewers get plain VP8: media packets unwrapped, recovered packets as if they had arrived, and each
parity packet replaced by an empty stand-in with its sequence number so that viewers do not ask for
it (receivers treat an empty payload as padding). A parity packet lost on the way is a gap that VP8
picture IDs show to be no picture at all (see assembler.VideoAssembler).

The parity covers the packet as the sender built it, before it stamped the send time: as in WebRTC's
own receiver, mutable header extensions (abs-send-time, transport-wide sequence numbers) are zeroed
before the XOR, and left out of the recovered packet.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc.rtp import HeaderExtensionsMap, RtpPacket

_RTP_HEADER = 12
_FEC_HEADER = 10
_ULP_LEVEL0_HEADER = 2  # protection length; the mask follows
# How far behind the newest packet a media packet (or a parity packet) is kept for recovery.
HISTORY = 256
MAX_PENDING_FEC = 48
_RATIO_WEIGHT = 1 / 256


class RawPacket(Protocol):
    """aiortc's RtpPacket as the DTLS transport parsed it; `raw` is the decrypted datagram."""

    sequence_number: int
    timestamp: int
    ssrc: int
    payload_type: int
    marker: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Parity:
    seqs: tuple[int, ...]
    header: bytes  # the 10-byte FEC header: XOR of the protected packets' fields
    body: bytes  # XOR of the protected packets' bytes after their 12-byte fixed header


def _newer(a: int, b: int) -> bool:
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def red_primary(payload: bytes) -> tuple[int, bytes] | None:
    """(payload type, data) of a RED payload's primary block; None if malformed.

    Redundant blocks (4-byte headers with F=1) are skipped: browsers send none for video, and their
    data is older than the primary's anyway.
    """
    pos = 0
    skip = 0
    while pos < len(payload) and payload[pos] & 0x80:
        if pos + 4 > len(payload):
            return None
        skip += ((payload[pos + 2] & 0x03) << 8) | payload[pos + 3]
        pos += 4
    if pos >= len(payload):
        return None
    pt = payload[pos] & 0x7F
    start = pos + 1 + skip
    if start > len(payload):
        return None
    return pt, payload[start:]


def _header_length(raw: bytes) -> int | None:
    """Bytes of fixed header, CSRCs and extension block; None if they overrun the packet."""
    if len(raw) < _RTP_HEADER:
        return None
    end = _RTP_HEADER + 4 * (raw[0] & 0x0F)
    if raw[0] & 0x10:
        if len(raw) < end + 4:
            return None
        end += 4 + 4 * struct.unpack_from("!H", raw, end + 2)[0]
    return end if end <= len(raw) else None


def zero_extensions(header: bytearray, ids: frozenset[int]) -> None:
    """Zero, in place, the values of the header extensions numbered `ids` (RFC 8285 layouts)."""
    if not ids or not header[0] & 0x10:
        return
    pos = _RTP_HEADER + 4 * (header[0] & 0x0F)
    profile, words = struct.unpack_from("!HH", header, pos)
    pos += 4
    end = min(len(header), pos + 4 * words)
    if profile == 0xBEDE:
        while pos < end:
            ext_id, length = header[pos] >> 4, (header[pos] & 0x0F) + 1
            if ext_id == 0:  # padding byte
                pos += 1
                continue
            if ext_id == 15:
                return
            if ext_id in ids:
                header[pos + 1 : min(end, pos + 1 + length)] = bytes(min(end, pos + 1 + length) - pos - 1)
            pos += 1 + length
    elif profile & 0xFFF0 == 0x1000:
        while pos + 1 < end:
            ext_id, length = header[pos], header[pos + 1]
            if ext_id == 0:
                pos += 1
                continue
            if ext_id in ids:
                header[pos + 2 : min(end, pos + 2 + length)] = bytes(min(end, pos + 2 + length) - pos - 2)
            pos += 2 + length


def parse_parity(data: bytes) -> _Parity | None:
    """An ULPFEC payload (RFC 5109 section 7, one protection level); None if malformed."""
    if len(data) < _FEC_HEADER + _ULP_LEVEL0_HEADER + 2 or data[0] & 0x80:
        return None
    mask_length = 6 if data[0] & 0x40 else 2
    body_at = _FEC_HEADER + _ULP_LEVEL0_HEADER + mask_length
    if len(data) < body_at:
        return None
    base = struct.unpack_from("!H", data, 2)[0]
    protected = struct.unpack_from("!H", data, _FEC_HEADER)[0]
    mask = int.from_bytes(data[_FEC_HEADER + 2 : body_at], "big")
    bits = mask_length * 8
    seqs = tuple((base + i) & 0xFFFF for i in range(bits) if mask >> (bits - 1 - i) & 1)
    body = data[body_at:]
    if not seqs or len(body) < protected:
        return None
    return _Parity(seqs, data[:_FEC_HEADER], body[:protected])


def recover(parity: _Parity, seq: int, ssrc: int, others: list[bytes]) -> bytes | None:
    """The packet `seq` rebuilt from the parity and every other packet it protects (virtual bytes)."""
    header = parity.header
    b0, b1 = header[0], header[1]
    timestamp = struct.unpack_from("!I", header, 4)[0]
    length = struct.unpack_from("!H", header, 8)[0]
    body = int.from_bytes(parity.body, "big")
    size = len(parity.body)
    for packet in others:
        b0 ^= packet[0]
        b1 ^= packet[1]
        timestamp ^= struct.unpack_from("!I", packet, 4)[0]
        length ^= len(packet) - _RTP_HEADER
        tail = packet[_RTP_HEADER : _RTP_HEADER + size]
        body ^= int.from_bytes(tail + bytes(size - len(tail)), "big")
    if length > size:
        return None  # the parity does not cover the whole packet
    fixed = struct.pack("!BBHII", 0x80 | (b0 & 0x3F), b1, seq, timestamp, ssrc)
    return fixed + body.to_bytes(size, "big")[:length]


def standin(payload_type: int, sequence_number: int, timestamp: int, ssrc: int) -> RtpPacket:
    """An empty packet holding a sequence number that carries no media (parity, a hole that held no
    picture). Browsers take it as padding: the number is accounted for, not NACKed."""
    return RtpPacket(payload_type, 0, sequence_number, timestamp, ssrc, b"")


class UlpfecReceiver:
    """Unwraps one publisher stream's RED packets and rebuilds lost media packets from its ULPFEC."""

    def __init__(
        self,
        red_pt: int,
        ulpfec_pt: int,
        media_pt: int,
        extensions: HeaderExtensionsMap,
        mutable_extension_ids: frozenset[int] = frozenset(),
    ) -> None:
        self.red_pt = red_pt
        self.ulpfec_pt = ulpfec_pt
        self.media_pt = media_pt
        self._extensions = extensions
        self._mutable = mutable_extension_ids
        # seq -> the media packet as the sender protected it (None: arrived, bytes unknown, e.g. RTX).
        self._media: dict[int, bytes | None] = {}
        self._order: deque[int] = deque()
        self._pending: list[_Parity] = []
        self._ssrc: int | None = None
        self._highest: int | None = None
        self.parity_packets = 0
        self.recovered = 0
        # Parity bytes per media byte, smoothed over the last few hundred packets: viewers never
        # receive parity, so a bitrate a viewer can take is worth this much more at the publisher.
        self.parity_ratio = 0.0
        self._media_bytes = 0.0
        self._parity_bytes = 0.0
        self.malformed = 0

    def receive(self, packet: Any) -> list[Any]:
        """What a RED packet stands for, in order: the media packet or a parity stand-in, then any
        packets it allowed to recover. Each carries `_data` unset; the caller depayloads."""
        unwrapped = red_primary(packet.payload)
        if unwrapped is None:
            self.malformed += 1
            return []
        if packet.ssrc != self._ssrc:
            self._reset(packet.ssrc)
        seq = packet.sequence_number
        if self._highest is None or _newer(seq, self._highest):
            self._highest = seq
        inner_pt, data = unwrapped
        out: list[Any] = []
        self._account(len(data), inner_pt == self.ulpfec_pt)
        if inner_pt == self.ulpfec_pt:
            self.parity_packets += 1
            parity = parse_parity(data)
            if parity is None:
                self.malformed += 1
            else:
                self._pending.append(parity)
                if len(self._pending) > MAX_PENDING_FEC:
                    del self._pending[0]
            self._remember(seq, None)
            out.append(standin(self.media_pt, seq, packet.timestamp, packet.ssrc))
        else:
            media = RtpPacket(inner_pt, packet.marker, seq, packet.timestamp, packet.ssrc, data)
            media.extensions = packet.extensions
            media.csrc = packet.csrc
            self._remember(seq, self._virtual(packet, inner_pt, data))
            out.append(media)
        out.extend(self._attempt())
        return out

    def _account(self, size: int, parity: bool) -> None:
        decay = 1.0 - _RATIO_WEIGHT
        self._media_bytes = self._media_bytes * decay + (0 if parity else size)
        self._parity_bytes = self._parity_bytes * decay + (size if parity else 0)
        if self._media_bytes > 0:
            self.parity_ratio = self._parity_bytes / self._media_bytes

    def _reset(self, ssrc: int) -> None:
        self._ssrc = ssrc
        self._media.clear()
        self._order.clear()
        self._pending.clear()
        self._highest = None

    def _virtual(self, packet: Any, inner_pt: int, data: bytes) -> bytes | None:
        """The media packet as it was before RED wrapping, with mutable extensions zeroed."""
        raw = getattr(packet, "raw", None)
        if raw is None:
            return None  # a retransmission unwrapped by aiortc: its original header is gone
        end = _header_length(raw)
        if end is None:
            return None
        header = bytearray(raw[:end])
        header[1] = (header[1] & 0x80) | inner_pt
        zero_extensions(header, self._mutable)
        return bytes(header) + data

    def _remember(self, seq: int, data: bytes | None) -> None:
        if seq in self._media:
            if data is not None and self._media[seq] is None:
                self._media[seq] = data
            return
        self._media[seq] = data
        self._order.append(seq)
        highest = self._highest
        while self._order and highest is not None and ((highest - self._order[0]) & 0xFFFF) > HISTORY:
            self._media.pop(self._order.popleft(), None)

    def _attempt(self) -> list[Any]:
        """Recover what the pending parity packets can, repeating while recoveries enable more."""
        out: list[Any] = []
        media = self._media
        highest = self._highest
        progress = True
        while progress and self._pending:
            progress = False
            keep: list[_Parity] = []
            for parity in self._pending:
                if highest is not None and ((highest - parity.seqs[-1]) & 0xFFFF) > HISTORY:
                    continue  # too old: its packets have left the history
                missing = [s for s in parity.seqs if s not in media]
                if not missing:
                    continue
                if len(missing) > 1:
                    keep.append(parity)
                    continue
                others = [media[s] for s in parity.seqs if s != missing[0]]
                if any(o is None for o in others):
                    continue  # one of them came by retransmission: its protected bytes are unknown
                rebuilt = recover(parity, missing[0], self._ssrc or 0, [o for o in others if o is not None])
                packet = self._parse(rebuilt)
                if packet is None:
                    self.malformed += 1
                    continue
                assert rebuilt is not None
                self.recovered += 1
                self._remember(missing[0], rebuilt)
                out.append(packet)
                progress = True
            self._pending = keep
        return out

    def _parse(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            packet = RtpPacket.parse(data, self._extensions)
        except ValueError:
            return None
        if packet.payload_type != self.media_pt:
            return None
        packet.extensions.abs_send_time = None
        packet.extensions.transport_sequence_number = None
        return packet
