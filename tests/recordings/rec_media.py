"""Real encoded media for the recordings tests: PyAV encodes synthetic pictures and tones."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from recordings import EncodedFrame, ManifestSigner, RecorderConfig, SegmentWriter, TrackInfo

VIDEO_RATE = 90_000
AUDIO_RATE = 48_000
CLOCK_BASE = 1_700_000_000.0
Packets = list[tuple[bytes, int, bool]]


def video_packets(
    codec: str = "vp8",
    *,
    seconds: float = 2.0,
    fps: int = 30,
    size: tuple[int, int] = (320, 240),
    gop: int = 30,
    flash_frame: int | None = None,
) -> list[tuple[bytes, int, bool]]:
    """(data, pts at 90 kHz, keyframe) of a moving bar; `flash_frame` onwards is all white."""
    width, height = size
    encoder = av.CodecContext.create("libvpx" if codec == "vp8" else "libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, VIDEO_RATE)
    encoder.framerate = fps
    encoder.gop_size = gop
    encoder.bit_rate = 600_000
    if codec == "h264":
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    else:
        encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    step = VIDEO_RATE // fps
    out: list[tuple[bytes, int, bool]] = []
    for i in range(round(seconds * fps)):
        picture = np.full((height, width, 3), 40, np.uint8)
        if flash_frame is not None and i >= flash_frame:
            picture[:] = 255
        else:
            x = (i * 7) % (width - 24)
            picture[:, x : x + 24] = (200, 60, 30)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = i * step
        frame.time_base = encoder.time_base
        out += [(bytes(p), int(p.pts), p.is_keyframe) for p in encoder.encode(frame)]
    out += [(bytes(p), int(p.pts), p.is_keyframe) for p in encoder.encode(None)]
    return out


def audio_packets(*, seconds: float = 2.0, beep_at: float | None = None) -> list[tuple[bytes, int, bool]]:
    """(data, pts at 48 kHz, True) of Opus packets: silence, then a 1 kHz tone from `beep_at`."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = AUDIO_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, AUDIO_RATE)
    encoder.bit_rate = 32_000
    total = round(seconds * AUDIO_RATE)
    t = np.arange(total) / AUDIO_RATE
    signal = np.zeros(total)
    if beep_at is not None:
        signal = np.where(t >= beep_at, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    pcm = (signal * 32767).astype(np.int16)
    out: list[tuple[bytes, int, bool]] = []
    for start in range(0, total - 959, 960):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 960], format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = encoder.time_base
        out += [(bytes(p), int(p.pts), True) for p in encoder.encode(frame)]
    out += [(bytes(p), int(p.pts), True) for p in encoder.encode(None)]
    return out


def as_frames(packets: list[tuple[bytes, int, bool]], rate: int, wall_start: float) -> list[EncodedFrame]:
    """Frames stamped as if each arrived exactly at its capture time after `wall_start`."""
    return [EncodedFrame(d, pts, key, wall_start + pts / rate) for d, pts, key in packets]


def cycle_frames(
    packets: list[tuple[bytes, int, bool]], rate: int, step: int, count: int
) -> Iterator[EncodedFrame]:
    """An arbitrarily long stream made by repeating a GOP-aligned packet list."""
    for i in range(count):
        data, _, key = packets[i % len(packets)]
        yield EncodedFrame(data, i * step, key, 1_000.0 + i * step / rate)


def record(
    track_dir: Path,
    codec: str,
    packets: Packets,
    signer: ManifestSigner,
    *,
    segment_s: float = 1.0,
    track_id: str | None = None,
    wall_start: float = CLOCK_BASE + 1.0,
) -> SegmentWriter:
    rate = VIDEO_RATE if codec != "opus" else AUDIO_RATE
    writer = SegmentWriter(
        track_dir,
        TrackInfo(track_id or codec, codec, clock_base=CLOCK_BASE, participant="p1"),
        signer,
        RecorderConfig(segment_duration_s=segment_s, reserve_bytes=4096),
    )
    for frame in as_frames(packets, rate, wall_start):
        writer.write(frame)
    writer.close()
    return writer
