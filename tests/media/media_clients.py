"""Real aiortc clients for the media tests: a publisher sending pre-encoded frames it recorded, and a
viewer recording the encoded frames it receives (hooked after aiortc's own jitter buffer, not ours)."""

from __future__ import annotations

import asyncio
import fractions
import functools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from rtc_server.media.aiortc_tap import H264_FMTP, loopback_candidates

WIDTH, HEIGHT, FPS = 320, 240, 30


@dataclass(frozen=True)
class EncodedClip:
    codec: str
    frames: tuple[bytes, ...]
    keyframes: tuple[bool, ...]
    pts_step: int
    clock_rate: int


@functools.cache
def video_clip(codec: str, count: int = 45, seed: int = 0) -> EncodedClip:
    """`count` frames of a moving picture (differing by seed), encoded once; frame 0 is the only keyframe."""
    name = {"VP8": "libvpx", "H264": "libx264"}[codec]
    ctx: Any = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = 400_000
    ctx.gop_size = 10_000
    if codec == "VP8":
        ctx.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
    else:
        ctx.profile = "Baseline"
        ctx.options = {"tune": "zerolatency", "preset": "ultrafast", "level": "31"}
    frames: list[bytes] = []
    keys: list[bool] = []
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(count):
        img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        img[..., 0] = (xx + i * 4) % 256
        img[..., 1] = (yy + i * 2) % 256
        img[..., 2] = (xx + yy + i * 8 + seed * 64) % 256
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = fractions.Fraction(1, FPS)
        for packet in ctx.encode(frame):
            frames.append(bytes(packet))
            keys.append(bool(packet.is_keyframe))
    for packet in ctx.encode(None):
        frames.append(bytes(packet))
        keys.append(bool(packet.is_keyframe))
    assert keys[0] and not any(keys[1:]), "clip must start with its only keyframe"
    return EncodedClip(codec, tuple(frames), tuple(keys), 90000 // FPS, 90000)


@functools.cache
def audio_clip(count: int = 50) -> EncodedClip:
    ctx: Any = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.layout = "stereo"
    ctx.format = "s16"
    ctx.bit_rate = 64000
    ctx.time_base = fractions.Fraction(1, 48000)
    out: list[bytes] = []
    t = np.arange(960 * (count + 4)) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    for i in range(count + 4):
        chunk = np.repeat(tone[i * 960 : (i + 1) * 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        out.extend(bytes(p) for p in ctx.encode(frame))
    return EncodedClip("opus", tuple(out[:count]), (True,) * count, 960, 48000)


class ClipTrack(MediaStreamTrack):
    """Sends a clip's encoded frames in real time, looping; a keyframe request restarts the clip."""

    def __init__(self, kind: str, clip: EncodedClip, fps: float) -> None:
        super().__init__()
        self.kind = kind
        self.clip = clip
        self._interval = 1.0 / fps
        self._index = 0
        self._count = 0
        self._start: float | None = None
        self.sent: list[bytes] = []
        self.keyframe_requests: list[float] = []
        self.paused = False

    def request_keyframe(self) -> None:
        self.keyframe_requests.append(time.monotonic())
        self._index = 0

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        while True:
            due = self._start + self._count * self._interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._count += 1
            if not self.paused:
                break
        data = self.clip.frames[self._index]
        self._index = (self._index + 1) % len(self.clip.frames)
        self.sent.append(data)
        packet = av.Packet(data)
        packet.pts = self._count * self.clip.pts_step
        packet.time_base = fractions.Fraction(1, self.clip.clock_rate)
        return packet


def _config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


@dataclass
class PublisherClient:
    pc: RTCPeerConnection
    video: ClipTrack | None
    audio: ClipTrack | None

    async def close(self) -> None:
        await self.pc.close()


async def make_offer(pc: RTCPeerConnection) -> str:
    offer = await pc.createOffer()
    with loopback_candidates():
        await pc.setLocalDescription(offer)
    return str(pc.localDescription.sdp)


async def publisher_client(
    video_codec: str | None = "VP8", audio: bool = True, clip_frames: int = 45, seed: int = 0
) -> tuple[PublisherClient, str]:
    pc = RTCPeerConnection(_config())
    video_track = audio_track = None
    if audio:
        audio_track = ClipTrack("audio", audio_clip(), 50)
        pc.addTransceiver(audio_track, direction="sendonly")
    if video_codec is not None:
        video_track = ClipTrack("video", video_clip(video_codec, clip_frames, seed), FPS)
        transceiver = pc.addTransceiver(video_track, direction="sendonly")
        caps = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.name == video_codec and (c.name != "H264" or dict(c.parameters) == H264_FMTP)
        ]
        transceiver.setCodecPreferences(caps)
        # Pre-encoded frames: a PLI restarts the clip at its keyframe instead of forcing the encoder.
        transceiver.sender._send_keyframe = video_track.request_keyframe  # type: ignore[method-assign]
    return PublisherClient(pc, video_track, audio_track), await make_offer(pc)


@dataclass
class ReceivedFrame:
    codec: str
    data: bytes
    at: float


class RecordingQueue(queue.Queue[Any]):
    """Replaces aiortc's decoder queue: records each complete encoded frame and decodes nothing."""

    def __init__(self, sink: list[ReceivedFrame], event: asyncio.Event) -> None:
        super().__init__()
        self._sink = sink
        self._event = event

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)
            return
        codec, encoded = item
        self._sink.append(ReceivedFrame(codec.name, bytes(encoded.data), time.monotonic()))
        self._event.set()


@dataclass
class ViewerClient:
    pc: RTCPeerConnection
    frames: dict[str, list[ReceivedFrame]] = field(default_factory=dict)
    events: dict[str, asyncio.Event] = field(default_factory=dict)

    async def wait_frames(self, kind: str, count: int, within: float = 10.0) -> list[ReceivedFrame]:
        async def wait() -> None:
            while len(self.frames[kind]) < count:
                self.events[kind].clear()
                await self.events[kind].wait()

        await asyncio.wait_for(wait(), within)
        return self.frames[kind]

    async def close(self) -> None:
        await self.pc.close()


async def viewer_client(kinds: tuple[str, ...] = ("audio", "video")) -> tuple[ViewerClient, str]:
    pc = RTCPeerConnection(_config())
    client = ViewerClient(pc)
    for kind in kinds:
        transceiver = pc.addTransceiver(kind, direction="recvonly")
        client.frames[kind] = []
        client.events[kind] = asyncio.Event()
        recording = RecordingQueue(client.frames[kind], client.events[kind])
        transceiver.receiver._RTCRtpReceiver__decoder_queue = recording  # type: ignore[attr-defined]
    return client, await make_offer(pc)


async def answer(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


def h264_nals(annexb: bytes) -> list[bytes]:
    """NAL units of an Annex B access unit, start codes and trailing zero bytes removed."""
    parts = annexb.split(b"\x00\x00\x01")
    return [p.rstrip(b"\x00") for p in parts[1:] if p.rstrip(b"\x00")]


def is_ordered_subsequence(received: list[bytes], sent: list[bytes]) -> bool:
    it = iter(sent)
    return all(any(r == s for s in it) for r in received)


async def wait_until(predicate: Callable[[], bool], within: float = 5.0, step: float = 0.05) -> float:
    """Poll `predicate` (state owned by aiortc has no event to await); returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(step)
    return time.monotonic() - start
