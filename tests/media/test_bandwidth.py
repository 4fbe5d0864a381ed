"""The publisher is told the weakest viewer's bandwidth (REMB), bounded below by the floor."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from rtc_server.media import MediaService, MediaSettings
from rtc_server.media.fec import UlpfecReceiver
from rtc_server.media.forwarding import TrackSlot
from rtc_server.media.stats import MediaCounters
from tests.media.media_clients import answer, publisher_client, viewer_client, wait_until


def record_rembs(sender: Any) -> list[int]:
    seen: list[int] = []
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            if sender._ssrc in ssrcs:
                seen.append(bitrate)
        await original(packet)

    sender._handle_rtcp_packet = handle
    return seen


def viewer_rtcp(viewer: Any) -> tuple[Any, int, int]:
    """The viewer's video receiver, the stream's SSRC as it sees it, and its own RTCP SSRC."""
    receiver = viewer.pc.getReceivers()[0]
    media_ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))
    return receiver, media_ssrc, receiver._RTCRtpReceiver__rtcp_ssrc


async def send_remb(viewer: Any, bps: int) -> None:
    receiver, media_ssrc, rtcp_ssrc = viewer_rtcp(viewer)
    fci = pack_remb_fci(bps, [media_ssrc])
    await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci))


async def test_lowest_viewer_estimate_reaches_the_publisher() -> None:
    media = MediaService(MediaSettings(viewer_bitrate_floor_bps=150_000))
    pub, offer = await publisher_client("VP8", audio=False)
    rembs = record_rembs(pub.pc.getTransceivers()[0].sender)
    viewers = []
    try:
        handle = await media.publish("s1", "staff", offer)
        await answer(pub.pc, handle.answer_sdp)
        await wait_until(lambda: len(rembs) >= 1, within=5)
        assert max(rembs) > 200_000, "the server's own estimate on loopback is high"
        for i, estimate in enumerate((900_000, 200_000)):
            viewer, voffer = await viewer_client(("video",))
            viewers.append(viewer)
            vhandle = await media.subscribe("s1", f"v{i}", voffer)
            await answer(viewer.pc, vhandle.answer_sdp)
            await viewer.wait_frames("video", 3)
            await send_remb(viewer, estimate)
        count = len(rembs)
        await wait_until(lambda: len(rembs) > count + 1, within=5)
        assert rembs[-1] <= 200_000 and rembs[-1] >= 150_000, rembs[-5:]
        assert media.stats().remb_capped >= 1
    finally:
        for viewer in viewers:
            await viewer.close()
        await pub.close()
        await media.close()


async def test_viewer_bitrate_limit_rules() -> None:
    counters = MediaCounters()
    slot = TrackSlot("video", counters, 0.5, bitrate_floor_bps=300_000)
    off = TrackSlot("video", counters, 0.5, bitrate_floor_bps=None)
    from rtc_server.media.forwarding import ForwardTrack

    a, b = ForwardTrack("video", 4, counters), ForwardTrack("video", 4, counters)
    for track in (a, b):
        slot.add_viewer(track)
        off.add_viewer(track)
    assert slot.viewer_bitrate_limit() is None
    a.bitrate_estimate = 2_000_000
    b.bitrate_estimate = 800_000
    assert slot.viewer_bitrate_limit() == 800_000
    b.bitrate_estimate = 100_000
    assert slot.viewer_bitrate_limit() == 300_000
    assert off.viewer_bitrate_limit() is None
    slot.remove_viewer(b)
    assert slot.viewer_bitrate_limit() == 2_000_000
    await slot.close()
    await off.close()


async def test_the_cap_leaves_room_for_the_publishers_parity() -> None:
    # Viewers never receive ULPFEC parity, so their estimate counts media only: capping the publisher
    # at that figure made it cut media to fit parity, and the viewers' estimates followed it down.
    media = MediaService(MediaSettings(viewer_bitrate_floor_bps=150_000))
    pub, offer = await publisher_client("VP8", audio=False)
    rembs = record_rembs(pub.pc.getTransceivers()[0].sender)
    viewer, voffer = await viewer_client(("video",))
    # Only the estimate sent below, not the viewer's own, which would replace it as it changes.
    viewer.pc.getReceivers()[0]._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]
    try:
        handle = await media.publish("s1", "staff", offer)
        await answer(pub.pc, handle.answer_sdp)
        peer = media._peers[handle.resource_id]
        tap = peer.taps["video"][0]  # type: ignore[attr-defined]
        tap.fec = UlpfecReceiver(116, 117, 96, HeaderExtensionsMap())
        tap.fec.parity_ratio = 0.5
        vhandle = await media.subscribe("s1", "v", voffer)
        await answer(viewer.pc, vhandle.answer_sdp)
        await viewer.wait_frames("video", 3)
        await send_remb(viewer, 200_000)
        count = len(rembs)
        await wait_until(lambda: len(rembs) > count + 1, within=5)
        assert 290_000 <= rembs[-1] <= 300_000, rembs[-5:]
    finally:
        await viewer.close()
        await pub.close()
        await media.close()


async def test_a_lossy_viewer_gets_each_video_packet_twice_until_the_loss_stays_with_the_copies() -> None:
    media = MediaService(MediaSettings(viewer_redundancy_loss=0.05))
    pub, offer = await publisher_client("VP8", audio=False, clip_frames=90)
    viewer, voffer = await viewer_client(("video",))
    try:
        handle = await media.publish("s1", "staff", offer)
        await answer(pub.pc, handle.answer_sdp)
        vhandle = await media.subscribe("s1", "v", voffer)
        await answer(viewer.pc, vhandle.answer_sdp)
        await viewer.wait_frames("video", 5)
        assert media.stats().packets_duplicated == 0, "no loss reported yet: one copy"
        receiver, media_ssrc, rtcp_ssrc = viewer_rtcp(viewer)
        stream = receiver._RTCRtpReceiver__remote_streams[media_ssrc]
        send_rtcp = receiver._send_rtcp

        async def without_own_reports(packet: Any) -> None:
            if not isinstance(packet, RtcpRrPacket):  # the test's reports speak for the viewer
                await send_rtcp(packet)

        receiver._send_rtcp = without_own_reports
        # Cumulative counters as a browser keeps them: the stream's real numbering, invented loss.
        start, lost = stream.cycles + stream.max_seq, 0.0

        async def keep_reporting(fraction: float, seconds: float) -> None:
            nonlocal start, lost
            for _ in range(int(seconds * 10)):
                highest = stream.cycles + stream.max_seq
                lost += fraction * (highest - start)
                start = highest
                info = RtcpReceiverInfo(
                    ssrc=media_ssrc,
                    fraction_lost=0,
                    packets_lost=int(lost),
                    highest_sequence=highest,
                    jitter=0,
                    lsr=0,
                    dlsr=0,
                )
                await send_rtcp(RtcpRrPacket(ssrc=rtcp_ssrc, reports=[info]))
                await asyncio.sleep(0.1)

        # Half the packets lost: a failing link, not a lossy one. No copies.
        await keep_reporting(0.5, 3.0)
        assert media.stats().packets_duplicated == 0, "a failing link is not answered with more traffic"
        lossy = asyncio.create_task(keep_reporting(0.1, 8.0))
        try:
            await wait_until(lambda: media.stats().packets_duplicated >= 20, within=8)
        finally:
            lossy.cancel()
        # The copies fill the gaps (the viewer reports no loss) and fail the viewer's SRTP replay
        # check where the original arrived: the picture goes on undisturbed, copies keep flowing.
        frames, copies = len(viewer.frames["video"]), media.stats().packets_duplicated
        await keep_reporting(0.0, 2.0)
        await wait_until(lambda: len(viewer.frames["video"]) >= frames + 10, within=5)
        assert media.stats().packets_duplicated >= copies + 20
        assert media.stats().redundancy_backoffs == 0
        # The loss stays with copies on: they are only load on a full link. They stop.
        backed_off = asyncio.create_task(keep_reporting(0.1, 8.0))
        try:
            await wait_until(lambda: media.stats().redundancy_backoffs == 1, within=8)
            copies = media.stats().packets_duplicated
            await asyncio.sleep(1.0)
            assert media.stats().packets_duplicated <= copies + 5, "copies in flight at the backoff only"
        finally:
            backed_off.cancel()
    finally:
        await viewer.close()
        await pub.close()
        await media.close()
