"""Encoded frames as they leave a publisher's receiver, and codec-specific inspection of them."""

from __future__ import annotations

from dataclasses import dataclass

VP8 = "VP8"
H264 = "H264"
OPUS = "opus"

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One complete encoded frame (video picture or audio packet), never decoded by the server.

    rtp_timestamp is the publisher's own; received_at is time.monotonic() when the frame completed
    (its last packet arrived) and wallclock is time.time() at the same moment.
    """

    data: bytes
    rtp_timestamp: int
    keyframe: bool
    codec: str
    clock_rate: int
    received_at: float
    wallclock: float


def vp8_is_keyframe(frame_data: bytes) -> bool:
    """VP8 frame tag (RFC 6386 9.1): the inverted key-frame bit is bit 0 of the first byte."""
    return bool(frame_data) and (frame_data[0] & 0x01) == 0


def vp8_payload_starts_frame(payload: bytes) -> bool:
    """RTP payload descriptor (RFC 7741 4.2) with S=1 and partition index 0: first packet of a frame."""
    return bool(payload) and (payload[0] & 0x1F) == 0x10


def vp8_picture_id(payload: bytes) -> tuple[int, int] | None:
    """(picture ID, modulus) from a VP8 payload descriptor (RFC 7741 4.2); None if it carries none."""
    if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return None
    if payload[2] & 0x80:
        if len(payload) < 4:
            return None
        return ((payload[2] & 0x7F) << 8) | payload[3], 0x8000
    return payload[2] & 0x7F, 0x80


def h264_payload_starts_keyframe(payload: bytes) -> bool:
    """True if this RTP payload opens an IDR picture or its parameter sets (SPS first, as browsers do)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == _H264_STAP_A:
        return len(payload) > 3 and (payload[3] & 0x1F) in (_H264_SPS, _H264_IDR)
    if nal_type == _H264_FU_A:
        return len(payload) > 1 and bool(payload[1] & 0x80) and (payload[1] & 0x1F) == _H264_IDR
    return nal_type in (_H264_SPS, _H264_IDR)


def h264_is_keyframe(annexb: bytes) -> bool:
    """An access unit in Annex B form is a keyframe if it holds an IDR slice."""
    pos = annexb.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(annexb):
        if annexb[pos + 3] & 0x1F == _H264_IDR:
            return True
        pos = annexb.find(b"\x00\x00\x01", pos + 3)
    return False


def is_keyframe(codec: str, data: bytes) -> bool:
    """Audio frames are all independent; video depends on the bitstream."""
    if codec == VP8:
        return vp8_is_keyframe(data)
    if codec == H264:
        return h264_is_keyframe(data)
    return True


def packet_starts_keyframe(codec: str, payload: bytes, data: bytes) -> bool:
    """True for the first RTP packet of a keyframe; `data` is the packet's depayloaded bytes.

    A viewer that needs a picture to start from is given packets from this one on.
    """
    if codec == VP8:
        return vp8_payload_starts_frame(payload) and vp8_is_keyframe(data)
    if codec == H264:
        return h264_payload_starts_keyframe(payload)
    return True
