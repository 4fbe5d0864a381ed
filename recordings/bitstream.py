"""Just enough bitstream parsing to remux without decoding.

Video dimensions come from the VP8 keyframe header or the H.264 SPS; Opus packet durations
from the TOC byte (RFC 6716 section 3.1).
"""

from __future__ import annotations

import re

_START_CODE = re.compile(b"\x00\x00\x01")
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


def vp8_keyframe_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a VP8 keyframe, None for an interframe or garbage (RFC 6386 9.1)."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def h264_nal_units(data: bytes) -> list[bytes]:
    """Split an Annex-B access unit into NAL units (start codes removed)."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        unit = data[start:end]
        # A 4-byte start code leaves its leading zero at the end of the previous unit.
        if i + 1 < len(starts) and unit.endswith(b"\x00"):
            unit = unit[:-1]
        if unit:
            units.append(unit)
    return units


class _Bits:
    def __init__(self, rbsp: bytes) -> None:
        self._data = rbsp
        self._pos = 0

    def bit(self) -> int:
        byte = self._pos >> 3
        if byte >= len(self._data):
            raise ValueError("SPS truncated")
        value = (self._data[byte] >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + bits.se() + 256) % 256
        last = next_scale or last


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_sps_dimensions(sps: bytes) -> tuple[int, int]:
    """(width, height) from an SPS NAL unit (header byte included), ITU-T H.264 7.3.2.1.1."""
    bits = _Bits(_rbsp(sps[1:]))
    profile_idc = bits.bits(8)
    bits.bits(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_plane = 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            separate_colour_plane = bits.bit()
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if bits.bit():
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    sub_w, sub_h = {1: (2, 2), 2: (2, 1), 3: (1, 1)}.get(chroma_array_type, (1, 1))
    crop_x = sub_w if chroma_array_type else 1
    crop_y = (sub_h if chroma_array_type else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise ValueError("SPS gives an empty picture")
    return width, height


def h264_parameter_sets(data: bytes) -> tuple[bytes | None, bytes | None]:
    """The last SPS and PPS NAL units in an Annex-B access unit, if any."""
    sps = pps = None
    for unit in h264_nal_units(data):
        nal_type = unit[0] & 0x1F
        if nal_type == NAL_SPS:
            sps = unit
        elif nal_type == NAL_PPS:
            pps = unit
    return sps, pps


_SILK_MS = (10, 20, 40, 60)
_CELT_US = (2500, 5000, 10000, 20000)


def opus_packet_samples(data: bytes) -> int | None:
    """Samples (at 48 kHz) carried by one Opus packet, None if the TOC is unreadable."""
    if not data:
        return None
    config = data[0] >> 3
    if config < 12:
        frame_us = _SILK_MS[config % 4] * 1000
    elif config < 16:
        frame_us = (10_000, 20_000)[config % 2]
    else:
        frame_us = _CELT_US[config % 4]
    code = data[0] & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(data) > 1:
        frames = data[1] & 0x3F
    else:
        return None
    return frames * frame_us * 48 // 1000
