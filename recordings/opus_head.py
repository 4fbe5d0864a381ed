"""The Opus stream description a recorded segment declares: an OpusHead with no pre-skip.

An Opus encoder's first `pre_skip` output samples are its look-ahead, and a player discards them.
A recorded segment starts in the middle of a browser's stream, so there is nothing to discard. But
a stream set up from libopus's own encoder declared libopus's 312 samples in the segment's OpusHead
and in Matroska's CodecDelay, and players dropped the first 6.5 ms of real sound of every segment.
A WebRTC receiver does not pre-skip either, so a pre-skip of 0 plays what the call sounded like.

FFmpeg takes that description (CodecPrivate and the codec delay) from a stream's parameters, which
PyAV only copies whole from another stream: `template()` demuxes a two-page in-memory Ogg Opus
file that declares it.
"""

from __future__ import annotations

import io
import struct
from functools import cache

import av
from av.container import InputContainer

RATE = 48_000
CHANNELS = 2  # as browsers negotiate it (opus/48000/2); mono packets play on both channels


@cache
def _crc_table() -> tuple[int, ...]:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected (zlib's crc32 is the reflected one)."""
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return tuple(table)


def _ogg_crc(data: bytes) -> int:
    table, crc = _crc_table(), 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _ogg_page(payload: bytes, sequence: int, flags: int, granule: int = 0) -> bytes:
    lacing = [255] * (len(payload) // 255) + [len(payload) % 255]
    header = b"OggS" + bytes([0, flags]) + struct.pack("<qIIi", granule, 1, sequence, 0)
    header += bytes([len(lacing), *lacing])
    crc = _ogg_crc(header + payload)
    return header[:22] + struct.pack("<I", crc) + header[26:] + payload


def opus_head(pre_skip: int = 0, channels: int = CHANNELS) -> bytes:
    """RFC 7845 identification header, channel mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, RATE, 0, 0)


@cache
def _template_file() -> bytes:
    tags = b"OpusTags" + struct.pack("<I", 10) + b"rtc-server" + struct.pack("<I", 0)
    silence = b"\xf8\xff\xfe"  # one 20 ms frame, so that the demuxer finds a stream to describe
    beginning, end = 0x02, 0x04
    return (
        _ogg_page(opus_head(), 0, beginning) + _ogg_page(tags, 1, 0) + _ogg_page(silence, 2, end, granule=960)
    )


def template() -> InputContainer:
    """An open container whose only stream describes recorded Opus (pre-skip 0): pass its stream to
    `add_stream_from_template`, then close it."""
    container = av.open(io.BytesIO(_template_file()), format="ogg")
    assert isinstance(container, InputContainer)
    return container
