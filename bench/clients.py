"""aiortc clients of the benchmark: a WHIP publisher, WHEP viewers that read frames as they complete.

Viewers hook rtc_server's receiver tap (frames released at their RTP marker bit, no jitter-buffer wait),
so what is measured is the network path plus the server, not aiortc's own receive buffering.
`DecodingViewer` decodes every frame in a thread and reads the painted clock (works through a
re-encoding relay); `HashViewer` only hashes the encoded bytes (cheap, for capacity runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from rtc_server.media.aiortc_tap import install_receiver_tap, loopback_candidates
from rtc_server.media.stats import MediaCounters

from . import clockcode
from .sources import frame_key


class BenchError(RuntimeError):
    """A benchmark could not run (server refused, peer never connected, tooling missing)."""


# POSTs the server refused as unparsable although the offer was whole (see post_sdp).
SDP_RETRIES = {"count": 0}


async def post_sdp(http: aiohttp.ClientSession, url: str, token: str | None, sdp: str) -> tuple[str, str]:
    """POST an offer, return (answer, Location).

    Retries a 400 invalid_sdp: the server's WHIP/WHEP handler reads the body with one
    `content.read(n)`, which returns only what has arrived so far, so on a lossy link (4G profile) an
    offer split across TCP segments is refused as truncated. Counted in SDP_RETRIES and reported.
    """
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(8):
        async with http.post(url, data=sdp.encode(), headers=headers) as resp:
            body = await resp.text()
            if resp.status == 201:
                return body, resp.headers.get("Location", "")
            if resp.status == 400 and "invalid_sdp" in body and attempt < 7:
                SDP_RETRIES["count"] += 1
                continue
            raise BenchError(f"POST {url}: {resp.status} {body[:200]}")
    raise BenchError(f"POST {url}: gave up")


async def local_offer(pc: RTCPeerConnection, loopback: bool) -> str:
    with loopback_candidates(loopback):
        await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def set_answer(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


async def answer_offer(pc: RTCPeerConnection, offer: str, loopback: bool) -> str:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    with loopback_candidates(loopback):
        await pc.setLocalDescription(await pc.createAnswer())
    return str(pc.localDescription.sdp)


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class Publisher:
    """Sends one video track (av.Packets, packed by aiortc without encoding) on a sendonly transceiver."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.pc = new_pc()
        self.track = track
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name in ("VP8", "rtx")]
        )
        request = getattr(track, "request_keyframe", None)
        if request is not None:
            # The encoder (or clip) lives in the track: a PLI/FIR forces its next keyframe.
            transceiver.sender._send_keyframe = request  # type: ignore[method-assign]

    async def publish(self, http: aiohttp.ClientSession, url: str, token: str | None, loopback: bool) -> None:
        answer, _ = await post_sdp(http, url, token, await local_offer(self.pc, loopback))
        await set_answer(self.pc, answer)

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Sample:
    """One frame seen by a viewer: when it completed, when it was shown, and its capture time (wall)."""

    completed: float
    shown: float
    captured: float | None


@dataclass
class ViewerBase:
    pc: RTCPeerConnection = field(default_factory=new_pc)
    samples: list[Sample] = field(default_factory=list)
    unread: int = 0
    audio: bool = True  # WHEP offers carry audio and video; a direct answer must match the offer

    def __post_init__(self) -> None:
        if self.audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.video = self.pc.addTransceiver("video", direction="recvonly")
        self.video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name in ("VP8", "rtx")]
        )

    def on_frame(self, frame: Any) -> None:
        raise NotImplementedError

    def _install(self) -> None:
        tap = install_receiver_tap(self.video, self.on_frame, MediaCounters(), 0.1, 0.06)

        def keyframe_wanted() -> None:
            task: asyncio.Future[None] = asyncio.ensure_future(tap.send_pli())
            self._pli_tasks.add(task)
            task.add_done_callback(self._pli_tasks.discard)

        self._pli_tasks: set[asyncio.Future[None]] = set()
        tap.on_keyframe_wanted(keyframe_wanted)
        self._tap = tap

    async def watch(self, http: aiohttp.ClientSession, url: str, token: str | None, loopback: bool) -> None:
        answer, _ = await post_sdp(http, url, token, await local_offer(self.pc, loopback))
        await set_answer(self.pc, answer)
        self._install()

    async def accept(self, offer: str, loopback: bool) -> str:
        """Direct connection (the floor): answer the publisher's offer ourselves."""
        answer = await answer_offer(self.pc, offer, loopback)
        self._install()
        return answer

    async def close(self) -> None:
        tap = getattr(self, "_tap", None)
        if tap is not None:
            await tap.stop()
        await self.pc.close()


class DecodingViewer(ViewerBase):
    """Decodes every frame in its own thread (off the event loop) and reads the painted capture time."""

    def __init__(self, audio: bool = True) -> None:
        super().__init__(audio=audio)
        self._queue: queue.Queue[tuple[bytes, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._decode_loop, name="bench-decode", daemon=True)
        self._thread.start()
        self.decode_errors = 0

    def on_frame(self, frame: Any) -> None:
        self._queue.put((frame.data, frame.wallclock))

    def _decode_loop(self) -> None:
        decoder: Any = av.CodecContext.create("vp8", "r")
        while (item := self._queue.get()) is not None:
            data, completed = item
            try:
                pictures = decoder.decode(av.Packet(data))
            except av.error.FFmpegError:
                self.decode_errors += 1
                continue
            for picture in pictures:
                plane = picture.planes[0]
                luma = np.frombuffer(plane, np.uint8).reshape(picture.height, plane.line_size)
                painted = clockcode.read(luma[:, : picture.width])
                now = time.time()
                captured = None
                if painted is not None:
                    captured = now - clockcode.age_ms(painted, now * 1000) / 1000
                else:
                    self.unread += 1
                self.samples.append(Sample(completed, now, captured))

    async def close(self) -> None:
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5)
        await super().close()


class HashViewer(ViewerBase):
    """Identifies each frame by the hash of its bytes against the publisher's send times (no decode)."""

    def __init__(self, sent_at: dict[bytes, float], audio: bool = True) -> None:
        super().__init__(audio=audio)
        self.sent_at = sent_at

    def on_frame(self, frame: Any) -> None:
        sent = self.sent_at.get(frame_key(frame.data))
        if sent is None:
            self.unread += 1
        self.samples.append(Sample(frame.wallclock, frame.wallclock, sent))


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def close_all(*peers: Any) -> None:
    for peer in peers:
        with contextlib.suppress(Exception):
            await peer.close()
