from __future__ import annotations

import pytest

from recordings.bitstream import (
    h264_nal_units,
    h264_parameter_sets,
    h264_sps_dimensions,
    opus_packet_samples,
    vp8_keyframe_dimensions,
)
from tests.recordings.rec_media import video_packets


@pytest.mark.parametrize("size", [(320, 240), (322, 178)])
def test_vp8_keyframe_header_gives_size(size: tuple[int, int]) -> None:
    packets = video_packets("vp8", seconds=0.1, size=size)
    assert vp8_keyframe_dimensions(packets[0][0]) == size
    assert vp8_keyframe_dimensions(packets[1][0]) is None  # interframe


@pytest.mark.parametrize("size", [(320, 240), (322, 178), (1280, 720)])
def test_h264_sps_gives_cropped_size(size: tuple[int, int]) -> None:
    packets = video_packets("h264", seconds=0.07, size=size)
    sps, pps = h264_parameter_sets(packets[0][0])
    assert sps is not None and pps is not None
    assert h264_sps_dimensions(sps) == size


def test_h264_high_profile_sps() -> None:
    # High profile 1920x1080 SPS as produced by libx264 (chroma_format_idc, cropping to 1080).
    sps = bytes.fromhex("6764002aacd940780227e5c04400000300040000030190f1832c80")
    assert h264_sps_dimensions(sps) == (1920, 1080)


def test_annexb_split_handles_3_and_4_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\x00\x00\x00\x01\x65\xcc"
    assert h264_nal_units(data) == [b"\x67\xaa", b"\x68\xbb", b"\x65\xcc"]


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\x9d\x01\x2a", bytes(12)])
def test_bad_video_headers_are_rejected(garbage: bytes) -> None:
    assert vp8_keyframe_dimensions(garbage) is None
    assert h264_parameter_sets(garbage) == (None, None)


def test_truncated_sps_raises_value_error() -> None:
    with pytest.raises(ValueError):
        h264_sps_dimensions(b"\x67\x42")


@pytest.mark.parametrize(
    ("toc", "samples"),
    [
        (bytes([0xFC]), 960),  # CELT FB 20 ms, one frame
        (bytes([0xF8 | 1]), 1920),  # CELT 20 ms, two frames
        (bytes([0x08]), 960),  # SILK NB 20 ms
        (bytes([0x18]), 2880),  # SILK NB 60 ms
        (bytes([0xE0 | 3, 0x03]), 360),  # CELT 2.5 ms, code 3 with three frames
        (b"", None),
        (bytes([0x03]), None),  # code 3 without the frame count byte
    ],
)
def test_opus_toc_durations(toc: bytes, samples: int | None) -> None:
    assert opus_packet_samples(toc) == samples
