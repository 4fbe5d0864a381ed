"""Server CPU per forwarded 640x480 30 fps VP8 stream, and latency added over a direct connection.

Modes (the server runs in its own process so that its CPU is measured alone):
  sfu    rtc_server.media.MediaService: encoded frames forwarded, never decoded or re-encoded
  relay  plain aiortc with MediaRelay: decode and re-encode per viewer (the naive SFU)
  direct publisher connected straight to the viewer (latency baseline, no server)

Latency: publisher hands a frame to its sender -> the viewer holds the frame's last packet (measured with
the engine's own marker-bit tap on the viewer, so aiortc's jitter buffer adds nothing to either side).
Frames are matched by their bytes, which only works where nothing re-encodes (sfu, direct).

    .venv/bin/python bench/forward_cpu.py [--seconds 15] [--viewers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from rtc_server.media import MediaService, MediaSettings
from rtc_server.media.aiortc_tap import ReceiverTap, install_receiver_tap, loopback_candidates
from rtc_server.media.stats import MediaCounters

WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 30, 300


def encode_clip() -> list[bytes]:
    ctx: Any = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.bit_rate = 1_200_000
    ctx.gop_size = 10_000
    ctx.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    out: list[bytes] = []
    for i in range(FRAMES):
        img = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
        img[..., 0] = (xx + i * 5) % 256
        img[..., 1] = (yy * 2 + i * 3) % 256
        img[..., 2] = rng.integers(0, 40, (HEIGHT, WIDTH), dtype=np.uint8) + (xx // 8 % 2) * 120
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out


class ClipTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self.frames = frames
        self.index = 0
        self.count = 0
        self.start: float | None = None
        self.sent_at: dict[bytes, float] = {}

    def request_keyframe(self) -> None:
        self.index = 0

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        delay = self.start + self.count / FPS - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.count += 1
        data = self.frames[self.index]
        self.index = (self.index + 1) % len(self.frames)
        self.sent_at[data] = time.monotonic()
        packet = av.Packet(data)
        packet.pts = self.count * (90000 // FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        return packet


async def local_offer(pc: RTCPeerConnection) -> str:
    with loopback_candidates():
        await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def answered(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


# --- server process -------------------------------------------------------------------------------


def server_main(conn: Connection, mode: str) -> None:
    asyncio.run(serve(conn, mode))


async def serve(conn: Connection, mode: str) -> None:
    loop = asyncio.get_running_loop()
    media = MediaService(MediaSettings(max_peers=64)) if mode == "sfu" else None
    relay = MediaRelay()
    source: asyncio.Future[MediaStreamTrack] = loop.create_future()
    pcs: list[RTCPeerConnection] = []
    cpu0 = wall0 = 0.0
    while True:
        command, arg = await loop.run_in_executor(None, conn.recv)
        if command == "publish":
            if media is not None:
                conn.send((await media.publish("bench", "staff", arg)).answer_sdp)
                continue
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc)

            def on_track(t: MediaStreamTrack) -> None:
                if not source.done():
                    source.set_result(t)

            pc.on("track", on_track)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=arg, type="offer"))
            answer = await pc.createAnswer()
            with loopback_candidates():
                await pc.setLocalDescription(answer)
            conn.send(pc.localDescription.sdp)
        elif command == "subscribe":
            if media is not None:
                conn.send((await media.subscribe("bench", f"v{len(pcs)}", arg, "staff")).answer_sdp)
                pcs.append(RTCPeerConnection())  # only counts viewers
                continue
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc)
            pc.addTrack(relay.subscribe(await source))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=arg, type="offer"))
            answer = await pc.createAnswer()
            with loopback_candidates():
                await pc.setLocalDescription(answer)
            conn.send(pc.localDescription.sdp)
        elif command == "cpu_start":
            cpu0, wall0 = time.process_time(), time.monotonic()
            conn.send(None)
        elif command == "cpu_stop":
            stats = media.stats() if media is not None else None
            conn.send((time.process_time() - cpu0, time.monotonic() - wall0, stats))
        elif command == "quit":
            if media is not None:
                await media.close()
            for pc in pcs:
                await pc.close()
            conn.send(None)
            return


# --- client side ----------------------------------------------------------------------------------


class Viewer:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceiver = self.pc.addTransceiver("video", direction="recvonly")
        self.arrivals: list[tuple[bytes, float]] = []
        self.receiver_tap: ReceiverTap | None = None

    def tap(self) -> None:
        def sink(frame: Any) -> None:
            self.arrivals.append((frame.data, time.monotonic()))

        self.receiver_tap = install_receiver_tap(self.transceiver, sink, MediaCounters(), 0.25, 0.06)

    async def close(self) -> None:
        if self.receiver_tap is not None:
            await self.receiver_tap.stop()
        await self.pc.close()


async def run(mode: str, seconds: float, viewers: int, clip: list[bytes]) -> dict[str, Any]:
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = ClipTrack(clip)
    sender = publisher.addTransceiver(track, direction="sendonly").sender
    # Pre-encoded clip: a keyframe request restarts it at its keyframe, as an encoder would.
    sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
    clients = [Viewer() for _ in range(viewers)]
    proc = None
    ctx = multiprocessing.get_context("spawn")
    if mode == "direct":
        viewer = clients[0]
        offer = await local_offer(publisher)
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        with loopback_candidates():
            await viewer.pc.setLocalDescription(await viewer.pc.createAnswer())
        viewer.tap()
        await answered(publisher, viewer.pc.localDescription.sdp)
    else:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=server_main, args=(child, mode), daemon=True)
        proc.start()
        loop = asyncio.get_running_loop()

        async def call(command: str, arg: Any = None) -> Any:
            parent.send((command, arg))
            return await loop.run_in_executor(None, parent.recv)

        await answered(publisher, await call("publish", await local_offer(publisher)))
        await asyncio.sleep(0.5)
        for viewer in clients:
            await answered(viewer.pc, await call("subscribe", await local_offer(viewer.pc)))
            viewer.tap()
    await asyncio.sleep(3.0)  # warm up: ICE, DTLS, first keyframe
    for viewer in clients:
        viewer.arrivals.clear()
    if proc is not None:
        await call("cpu_start")
    await asyncio.sleep(seconds)
    result: dict[str, Any] = {"mode": mode, "viewers": viewers}
    if proc is not None:
        cpu, wall, stats = await call("cpu_stop")
        result["server_cpu_pct"] = 100 * cpu / wall
        if stats is not None:
            result["server_forward_delay_mean_ms"] = (
                1000 * stats.forward_delay_sum_s / max(1, stats.forward_delay_count)
            )
            result["server_forward_delay_max_ms"] = 1000 * stats.forward_delay_max_s
            result["server_frames"] = (
                stats.frames_received,
                stats.frames_forwarded,
                stats.frames_dropped,
                stats.frames_abandoned,
                stats.plis_sent,
                stats.nacks_sent,
                stats.nacks_received,
            )
    received = [len(v.arrivals) for v in clients]
    result["viewer_fps"] = statistics.mean(received) / seconds
    delays = []
    for viewer in clients:
        for data, at in viewer.arrivals:
            sent = track.sent_at.get(data)
            if sent is not None and 0 <= at - sent < 2:
                delays.append(1000 * (at - sent))
    if delays and mode != "relay":
        q = statistics.quantiles(delays, n=100)
        result["latency_p50_ms"], result["latency_p95_ms"] = q[49], q[94]
    if proc is not None:
        await call("quit")
        proc.join(5)
    for viewer in clients:
        await viewer.close()
    await publisher.close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--modes", default="direct,sfu,relay")
    args = parser.parse_args()
    clip = await asyncio.get_running_loop().run_in_executor(None, encode_clip)
    kbps = sum(len(f) for f in clip) * 8 * FPS / len(clip) / 1000
    print(f"clip: {len(clip)} frames 640x480 VP8, {kbps:.0f} kbit/s at {FPS} fps")
    results = {}
    for mode in args.modes.split(","):
        viewers = 1 if mode == "direct" else args.viewers
        results[mode] = await run(mode, args.seconds, viewers, clip)
        print(
            " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in results[mode].items())
        )
    if "direct" in results and "sfu" in results and "latency_p50_ms" in results["sfu"]:
        d, s = results["direct"], results["sfu"]
        print(
            f"added by the SFU hop: p50 {s['latency_p50_ms'] - d['latency_p50_ms']:+.2f} ms, "
            f"p95 {s['latency_p95_ms'] - d['latency_p95_ms']:+.2f} ms"
        )
    if "sfu" in results and "relay" in results:
        n = args.viewers
        print(
            f"server CPU per forwarded stream: sfu {results['sfu']['server_cpu_pct'] / n:.1f}% "
            f"vs relay {results['relay']['server_cpu_pct'] / n:.1f}% of one core ({n} viewer(s))"
        )


if __name__ == "__main__":
    asyncio.run(main())
