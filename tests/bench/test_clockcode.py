"""The painted clock: read back exactly, through VP8 at phone bitrates, and refused when damaged."""

from __future__ import annotations

import fractions
from typing import Any

import av
import numpy as np
import pytest

from bench import clockcode
from bench.sources import Scene, VideoFormat, vp8_encoder


def luma_of(frame: Any) -> np.ndarray:
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]


@pytest.mark.parametrize("ms", [0, 1, 1_764_000_000_123, (1 << 32) - 1, 123_456_789])
def test_painted_time_reads_back(ms: int) -> None:
    luma = np.full((480, 640), 128, np.uint8)
    clockcode.paint(luma, ms)
    assert clockcode.read(luma) == ms % (1 << 32)


def test_unpainted_or_damaged_code_reads_as_none() -> None:
    luma = np.random.default_rng(3).integers(0, 256, (480, 640), dtype=np.uint8)
    assert clockcode.read(luma) is None
    clockcode.paint(luma, 1_764_000_000_123)
    side = clockcode.cell_size(640)
    luma[:side, :side] = 255 - luma[:side, :side]  # one bit flipped: the check byte no longer matches
    assert clockcode.read(luma) is None
    luma[:side, :side] = 128  # a grey cell: neither black nor white
    assert clockcode.read(luma) is None


def test_age_undoes_the_modulo() -> None:
    now = float((1 << 32) + 5)  # just after a wrap
    painted = (1 << 32) - 10
    assert clockcode.age_ms(painted, now) == pytest.approx(15)
    assert clockcode.age_ms(100, 150.5) == pytest.approx(50.5)


@pytest.mark.parametrize("fmt", [VideoFormat(640, 480, 30, 300_000), VideoFormat(320, 240, 30, 150_000)])
def test_code_survives_vp8_at_low_bitrate(fmt: VideoFormat) -> None:
    encoder = vp8_encoder(fmt)
    decoder = av.CodecContext.create("vp8", "r")
    scene = Scene(fmt)
    read = []
    for i in range(20):
        frame = scene.frame(i, 1_000_000 + i * 33)
        frame.pts, frame.time_base = i, fractions.Fraction(1, fmt.fps)
        for packet in encoder.encode(frame):
            for picture in decoder.decode(av.Packet(bytes(packet))):
                read.append(clockcode.read(luma_of(picture)))
    assert read == [1_000_000 + i * 33 for i in range(20)]


def test_scene_has_phone_like_bitrate() -> None:
    from bench.sources import encode_clip

    clip = encode_clip(VideoFormat(640, 480, 30, 1_000_000), count=60)
    assert 700_000 < clip.bitrate < 1_400_000
