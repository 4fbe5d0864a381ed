"""Video the benchmark publishes: textured moving pictures with the capture time painted in.

`LiveEncodedTrack` paints and encodes each frame with PyAV's libvpx at capture time (the latency run);
`ClipTrack` loops frames encoded once (cheap load generators, identified by the hash of their bytes).
Both hand aiortc `av.Packet`s, which its sender packs without encoding again.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from . import clockcode

CLOCK_RATE = 90000


@dataclass(frozen=True)
class VideoFormat:
    width: int = 640
    height: int = 480
    fps: int = 30
    bitrate: int = 1_000_000


class Scene:
    """Phone-camera-like content: a panning texture with a moving block, cheap to make (numpy slicing)."""

    def __init__(self, fmt: VideoFormat, seed: int = 0) -> None:
        self.fmt = fmt
        rng = np.random.default_rng(seed)
        w, h = fmt.width, fmt.height
        # Texture of 4x4-pixel blocks plus fine grain: detail an encoder must spend bits on.
        blocks = rng.integers(40, 216, (h // 2, w // 2), dtype=np.uint8)
        coarse = np.kron(blocks, np.ones((4, 4), dtype=np.uint8))
        grain = rng.integers(0, 24, coarse.shape, dtype=np.uint8)
        self.texture = (coarse // 2 + grain).astype(np.uint8)
        self.chroma = np.kron(
            rng.integers(96, 160, (h // 4, w // 4), dtype=np.uint8), np.ones((4, 4), np.uint8)
        )

    def frame(self, index: int, ms: int | None) -> av.VideoFrame:
        w, h = self.fmt.width, self.fmt.height
        dx, dy = (index * 3) % w, (index * 2) % h
        y = np.ascontiguousarray(self.texture[dy : dy + h, dx : dx + w])
        bx = int((w - 120) * (0.5 + 0.5 * np.sin(index / 20)))
        by = int((h - 200) * (0.5 + 0.5 * np.cos(index / 27))) + 80
        y[by : by + 100, bx : bx + 120] = 255 - y[by : by + 100, bx : bx + 120]
        if ms is not None:
            clockcode.paint(y, ms)
        cdx, cdy = (index % (w // 2)), (index % (h // 2))
        u = self.chroma[cdy : cdy + h // 2, cdx : cdx + w // 2]
        v = self.chroma[h // 2 - cdy : h - cdy, w // 2 - cdx : w - cdx] if cdx else u
        if ms is not None:
            band = clockcode.band_height(w) // 2
            u = u.copy()
            v = v.copy()
            u[:band] = 128
            v[:band] = 128
        planar = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
        return av.VideoFrame.from_ndarray(planar, format="yuv420p")


def vp8_encoder(fmt: VideoFormat) -> Any:
    ctx: Any = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = fmt.width, fmt.height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fmt.fps)
    ctx.framerate = fractions.Fraction(fmt.fps, 1)
    ctx.bit_rate = fmt.bitrate
    ctx.gop_size = 10 * fmt.fps
    # Real-time settings as WebRTC uses them: no lookahead, fastest speed, CBR-like buffer.
    ctx.options = {
        "deadline": "realtime",
        "lag-in-frames": "0",
        "cpu-used": "8",
        "error-resilient": "1",
        "static-thresh": "0",
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "buf-sz": "1000",
        "buf-initial-sz": "500",
        "buf-optimal-sz": "600",
        "threads": "1",
    }
    return ctx


def _packet(data: bytes, count: int, fps: int) -> av.Packet:
    packet = av.Packet(data)
    packet.pts = count * (CLOCK_RATE // fps)
    packet.time_base = fractions.Fraction(1, CLOCK_RATE)
    return packet


class _Paced(MediaStreamTrack):
    kind = "video"

    def __init__(self, fps: int) -> None:
        super().__init__()
        self.fps = fps
        self.count = 0
        self._start: float | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self.count / self.fps
        if due - loop.time() > 0:
            await asyncio.sleep(due - loop.time())
        elif loop.time() - due > 1.0:
            self._start = loop.time() - self.count / self.fps  # stalled: do not burst to catch up
        self.count += 1


class LiveEncodedTrack(_Paced):
    """Paints the wall-clock time into each frame, then encodes it with libvpx (in a worker thread)."""

    def __init__(self, fmt: VideoFormat, seed: int = 0) -> None:
        super().__init__(fmt.fps)
        self.fmt = fmt
        self.scene = Scene(fmt, seed)
        self.encoder = vp8_encoder(fmt)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="bench-encode")
        self._keyframe = True
        self.bytes_sent = 0
        self.frames_sent = 0
        self.encode_s = 0.0

    def request_keyframe(self) -> None:
        self._keyframe = True

    def _encode(self, index: int, keyframe: bool) -> tuple[list[bytes], float]:
        ms = int(time.time() * 1000)
        started = time.perf_counter()
        frame = self.scene.frame(index, ms)
        frame.pts = index
        frame.time_base = fractions.Fraction(1, self.fmt.fps)
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        out = [bytes(p) for p in self.encoder.encode(frame)]
        return out, time.perf_counter() - started

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        while True:
            await self._tick()
            keyframe, self._keyframe = self._keyframe, False
            packets, spent = await loop.run_in_executor(self._executor, self._encode, self.count, keyframe)
            self.encode_s += spent
            if packets:
                data = b"".join(packets)
                self.bytes_sent += len(data)
                self.frames_sent += 1
                return _packet(data, self.count, self.fps)

    def stop(self) -> None:
        super().stop()
        self._executor.shutdown(wait=False)


@dataclass(frozen=True)
class EncodedClip:
    fmt: VideoFormat
    frames: tuple[bytes, ...]

    @property
    def bitrate(self) -> float:
        return sum(len(f) for f in self.frames) * 8 * self.fmt.fps / len(self.frames)


def encode_clip(fmt: VideoFormat, count: int = 150, seed: int = 0) -> EncodedClip:
    """`count` frames, the first the only keyframe (a keyframe request restarts the loop)."""
    ctx = vp8_encoder(fmt)
    ctx.gop_size = 100_000
    scene = Scene(fmt, seed)
    frames: list[bytes] = []
    for i in range(count):
        frame = scene.frame(i, None)
        frame.pts = i
        frame.time_base = fractions.Fraction(1, fmt.fps)
        frames.extend(bytes(p) for p in ctx.encode(frame))
    frames.extend(bytes(p) for p in ctx.encode(None))
    return EncodedClip(fmt, tuple(frames))


def frame_key(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


class ClipTrack(_Paced):
    """Loops a pre-encoded clip in real time; records when each frame (by hash) was handed to the sender.

    A looped frame repeats its bytes every len(clip) frames, so the send time kept is the latest one:
    receivers match within a few hundred milliseconds, far shorter than a loop of 5 seconds.
    """

    def __init__(self, clip: EncodedClip) -> None:
        super().__init__(clip.fmt.fps)
        self.clip = clip
        self.keys = [frame_key(f) for f in clip.frames]
        self.index = 0
        self.sent_at: dict[bytes, float] = {}

    def request_keyframe(self) -> None:
        self.index = 0

    async def recv(self) -> av.Packet:
        await self._tick()
        i = self.index
        self.index = (i + 1) % len(self.clip.frames)
        self.sent_at[self.keys[i]] = time.time()
        return _packet(self.clip.frames[i], self.count, self.fps)
