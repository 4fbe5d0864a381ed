"""A flash-and-beep test pattern for measuring A/V sync end to end.

The publisher side: VP8 pictures that turn white, and Opus audio that beeps at 1 kHz, at the same
capture instants; two aiortc tracks paced from one shared start so the client adds no skew of its
own. The recording side: decode sealed segments, place every frame and sample on the participant
clock (segment media_start_us + pts within the segment) and find the onsets.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

WIDTH, HEIGHT, FPS = 320, 240, 30
VIDEO_RATE, AUDIO_RATE = 90_000, 48_000
AUDIO_FRAME = 960  # 20 ms Opus packets
# Capture instants of the flashes and beeps after the shared start. With 1 s segments the first
# falls on a segment boundary, the second mid-segment: the two measure different paths.
EVENTS_S = (2.0, 4.5)
FLASH_FRAMES = 3
BEEP_S = 0.1
WHITE_LUMA = 200.0
LOUD = 0.1  # of full scale
MIN_GAP_S = 0.5  # onsets closer than this belong to the same event


@dataclass(frozen=True)
class Clip:
    frames: tuple[bytes, ...]
    pts_step: int
    clock_rate: int

    @property
    def interval(self) -> float:
        return self.pts_step / self.clock_rate


def video_pattern(seconds: float) -> Clip:
    """Blocking: a moving bar on grey, all white for FLASH_FRAMES frames at each of EVENTS_S;
    a keyframe every second so the recorder can cut 1 s segments."""
    encoder: Any = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.framerate = fractions.Fraction(FPS, 1)
    encoder.bit_rate = 400_000
    encoder.gop_size = FPS
    encoder.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
    flash = {round(at * FPS) + k for at in EVENTS_S for k in range(FLASH_FRAMES)}
    out: list[bytes] = []
    for i in range(round(seconds * FPS)):
        picture = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
        if i in flash:
            picture[:] = 255
        else:
            x = (i * 7) % (WIDTH - 24)
            picture[:, x : x + 24] = (200, 60, 30)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = encoder.time_base
        out += [bytes(p) for p in encoder.encode(frame)]
    out += [bytes(p) for p in encoder.encode(None)]
    # Frame i must be picture i, or the flash would move: lag-in-frames 0 gives one packet each.
    assert len(out) == round(seconds * FPS), len(out)
    return Clip(tuple(out), VIDEO_RATE // FPS, VIDEO_RATE)


def audio_pattern(seconds: float) -> Clip:
    """Blocking: silence with a BEEP_S 1 kHz tone from each of EVENTS_S, as 20 ms Opus packets."""
    encoder: Any = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = AUDIO_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 32_000
    encoder.time_base = fractions.Fraction(1, AUDIO_RATE)
    # Opus decodes its input `delay` samples late (a live receiver does not pre-skip): start the
    # signal that much early so decoded sample k of the stream is the sound of k / AUDIO_RATE.
    delay = 312
    total = round(seconds * AUDIO_RATE)
    t = (np.arange(total) + delay) / AUDIO_RATE
    beeping = np.zeros(t.shape, dtype=bool)
    for at in EVENTS_S:
        beeping |= (t >= at) & (t < at + BEEP_S)
    pcm = np.where(beeping, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    pcm16 = (pcm * 32767).astype(np.int16)
    pcm16 = np.concatenate([pcm16, np.zeros(AUDIO_FRAME * 4, np.int16)])
    out: list[bytes] = []
    for n, start in enumerate(range(0, len(pcm16) - AUDIO_FRAME + 1, AUDIO_FRAME)):
        frame = av.AudioFrame.from_ndarray(
            pcm16[None, start : start + AUDIO_FRAME], format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * AUDIO_FRAME
        frame.time_base = encoder.time_base
        out += [bytes(p) for p in encoder.encode(frame)]
    count = total // AUDIO_FRAME
    assert len(out) >= count, len(out)
    return Clip(tuple(out[:count]), AUDIO_FRAME, AUDIO_RATE)


@dataclass
class SharedStart:
    """One capture start (event-loop time) for every track, set by whichever track sends first."""

    t0: float | None = None
    wall_t0: float | None = None

    def get(self, loop: asyncio.AbstractEventLoop) -> float:
        if self.t0 is None:
            self.t0 = loop.time()
            self.wall_t0 = time.time()
        return self.t0


@dataclass
class SendLog:
    """Loop time each frame was handed to aiortc, minus when it was due (its capture instant)."""

    lateness: list[float] = field(default_factory=list)

    def late(self, index: int) -> float:
        return self.lateness[index]


class PatternTrack(MediaStreamTrack):
    """Sends a clip's encoded frames once, frame i at start.t0 + i * interval with pts i * step; then
    stays silent. Keyframe requests are ignored: the clip has one every second, and restarting it
    would move the pattern."""

    def __init__(self, kind: str, clip: Clip, start: SharedStart) -> None:
        super().__init__()
        self.kind = kind
        self.clip = clip
        self.start = start
        self.log = SendLog()
        self.done = asyncio.Event()
        self._index = 0

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        t0 = self.start.get(loop)
        if self._index >= len(self.clip.frames):
            self.done.set()
            await loop.create_future()  # never resolves: cancelled when the connection closes
        due = t0 + self._index * self.clip.interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.log.lateness.append(loop.time() - due)
        packet = av.Packet(self.clip.frames[self._index])
        packet.pts = self._index * self.clip.pts_step
        packet.time_base = fractions.Fraction(1, self.clip.clock_rate)
        self._index += 1
        return packet


# -- reading the recording -------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    times: np.ndarray  # seconds on the participant clock
    values: np.ndarray  # video: mean luma per frame; audio: peak |sample| per sample, 0..1
    segments: int
    clock_base_us: int


def _manifest(track_dir: Path) -> dict[str, Any]:
    signed: dict[str, Any] = json.loads((track_dir / "manifest.json").read_bytes())["signed"]
    return signed


def _time(frame: av.AudioFrame | av.VideoFrame) -> float:
    if frame.time is None:
        raise AssertionError("decoded frame without a timestamp")
    return float(frame.time)


def decode_video(track_dir: Path) -> Decoded:
    """Blocking: every decoded picture's media time and mean luma."""
    signed = _manifest(track_dir)
    times: list[float] = []
    values: list[float] = []
    for segment in signed["segments"]:
        start = segment["media_start_us"] / 1e6
        with av.open(str(track_dir / segment["file"])) as container:
            for frame in container.decode(container.streams.video[0]):
                times.append(start + _time(frame))
                values.append(float(frame.to_ndarray(format="gray").mean()))
    return Decoded(
        np.array(times), np.array(values), len(signed["segments"]), signed["track"]["clock_base_us"]
    )


def decode_audio(track_dir: Path) -> Decoded:
    """Blocking: every decoded sample's media time and peak amplitude across channels."""
    signed = _manifest(track_dir)
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for segment in signed["segments"]:
        start = segment["media_start_us"] / 1e6
        with av.open(str(track_dir / segment["file"])) as container:
            for frame in container.decode(container.streams.audio[0]):
                samples = frame.to_ndarray()
                if samples.dtype.kind in "iu":
                    samples = samples.astype(np.float32) / 32768
                if frame.format.is_planar:
                    peak = np.abs(samples).max(axis=0)
                else:  # interleaved: one row of channel-interleaved samples
                    peak = np.abs(samples.reshape(-1, len(frame.layout.channels))).max(axis=1)
                times.append(start + _time(frame) + np.arange(len(peak)) / frame.sample_rate)
                values.append(peak)
    return Decoded(
        np.concatenate(times) if times else np.array([]),
        np.concatenate(values) if values else np.array([]),
        len(signed["segments"]),
        signed["track"]["clock_base_us"],
    )


def ms(seconds: list[float]) -> str:
    return "[" + ", ".join(f"{s * 1000:+.1f}" for s in seconds) + "] ms"


def onsets(decoded: Decoded, threshold: float) -> list[float]:
    """Times where the value first exceeds `threshold` after at least MIN_GAP_S below it."""
    hits = decoded.times[decoded.values > threshold]
    found: list[float] = []
    previous = -np.inf
    for t in hits:
        if t - previous > MIN_GAP_S:
            found.append(float(t))
        previous = t
    return found


def flash_onsets(video: Decoded) -> list[float]:
    return onsets(video, WHITE_LUMA)


def beep_onsets(audio: Decoded) -> list[float]:
    return onsets(audio, LOUD)
