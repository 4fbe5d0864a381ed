"""The naive design as a baseline: plain aiortc with MediaRelay, decoding and re-encoding per viewer.

    python -m bench.relay_server [--host 127.0.0.1] [--port 0]

POST /whip (sendonly offer) publishes, POST /whep (recvonly offer) watches: no auth, one stream.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from rtc_server.media.aiortc_tap import loopback_candidates

SOURCE: web.AppKey[asyncio.Future[MediaStreamTrack]] = web.AppKey("source")
PEERS: web.AppKey[list[RTCPeerConnection]] = web.AppKey("peers")
RELAY: web.AppKey[MediaRelay] = web.AppKey("relay")
LOOPBACK: web.AppKey[bool] = web.AppKey("loopback")


async def _answer(request: web.Request, pc: RTCPeerConnection) -> web.Response:
    offer = await request.text()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    with loopback_candidates(request.app[LOOPBACK]):
        await pc.setLocalDescription(await pc.createAnswer())
    return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp")


async def whip(request: web.Request) -> web.Response:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    request.app[PEERS].append(pc)
    source = request.app[SOURCE]

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not source.done():
            source.set_result(track)

    return await _answer(request, pc)


async def whep(request: web.Request) -> web.Response:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    request.app[PEERS].append(pc)
    track = await asyncio.wait_for(asyncio.shield(request.app[SOURCE]), 30)
    pc.addTrack(request.app[RELAY].subscribe(track))
    return await _answer(request, pc)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    app[SOURCE] = asyncio.get_running_loop().create_future()
    app[PEERS] = []
    app[RELAY] = MediaRelay()
    yield
    for pc in app[PEERS]:
        await pc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = web.Application()
    app[LOOPBACK] = args.host.startswith("127.")
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post("/whip", whip)
    app.router.add_post("/whep", whep)

    async def run() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"relay ready at http://{args.host}:{port}", file=sys.stderr, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
