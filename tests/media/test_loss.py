"""Packet loss on either hop is repaired (NACK/RTX) and never reaches a viewer as a broken frame."""

from __future__ import annotations

from typing import Any

from rtc_server.media import MediaService
from rtc_server.media.frames import is_keyframe
from tests.media.media_clients import answer, is_ordered_subsequence, publisher_client, viewer_client


def drop_first_copy_of_every_nth(
    dtls_transport: Any, payload_type: int, n: int, copies: int = 1, start_after: int = 0
) -> list[int]:
    """Drop the first `copies` copies of every n-th RTP packet of one payload type arriving at a DTLS
    transport (copies=2 also loses the first retransmission), sparing the first `start_after` packets.

    Dropped before SRTP (whose header is in the clear), as a network would: dropping after decryption
    would make SRTP's replay check reject the retransmission of a packet it already saw.
    """
    dropped: list[int] = []
    ice_transport = dtls_transport.transport
    original = ice_transport._recv
    seen = 0

    async def lossy_recv() -> bytes:
        nonlocal seen
        while True:
            data: bytes = await original()
            seen += 1
            if seen > start_after and len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
                seq = int.from_bytes(data[2:4], "big")
                if data[1] & 0x7F == payload_type and seq % n == 0 and dropped.count(seq) < copies:
                    dropped.append(seq)
                    continue
            return data

    ice_transport._recv = lossy_recv
    return dropped


def video_payload_type(sdp: str) -> int:
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:") and "VP8/90000" in line:
            return int(line[9:].split()[0])
    raise AssertionError("no VP8 in answer")


async def test_lost_packets_on_both_hops_are_retransmitted_not_forwarded_broken(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8", audio=False)
    handle = await media.publish("s1", "staff", offer)
    server_peer = media._peers[handle.resource_id]
    pt_in = video_payload_type(handle.answer_sdp)
    dropped_in = drop_first_copy_of_every_nth(
        server_peer.pc.getTransceivers()[0].receiver.transport, pt_in, 7, start_after=10
    )
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client(("video",))
    vhandle = await media.subscribe("s1", "officer", voffer)
    pt_out = video_payload_type(vhandle.answer_sdp)
    # The viewer-side check runs after aiortc's own jitter buffer, which would hand on a keyframe
    # missing its first packet if the very first packets were lost: spare the start.
    dropped_out = drop_first_copy_of_every_nth(
        viewer.pc.getTransceivers()[0].receiver.transport, pt_out, 11, start_after=30
    )
    await answer(viewer.pc, vhandle.answer_sdp)
    try:
        video = await viewer.wait_frames("video", 60)
        assert pub.video is not None
        assert len(dropped_in) >= 5 and len(dropped_out) >= 3
        assert is_keyframe("VP8", video[0].data)
        assert is_ordered_subsequence([f.data for f in video], pub.video.sent)
        stats = media.stats()
        assert stats.nacks_sent >= 1, "the server asks the publisher for what it lost"
        assert stats.nacks_received >= 3, "the server answers the viewer's NACKs from its history"
        # Repaired, not abandoned: the stream never fell back to waiting for a keyframe.
        assert stats.frames_abandoned == 0
        assert len(video) >= 60
    finally:
        await viewer.close()
        await pub.close()


async def test_a_lost_retransmission_is_asked_for_again_in_time(media: MediaService) -> None:
    # aiortc's receiver NACKs a hole once; losing that retransmission too would cost the frame
    # (abandoned after reorder_wait_s, then a keyframe) were the NACK not repeated on a timer.
    pub, offer = await publisher_client("VP8", audio=False)
    handle = await media.publish("s1", "staff", offer)
    server_peer = media._peers[handle.resource_id]
    pt_in = video_payload_type(handle.answer_sdp)
    transport = server_peer.pc.getTransceivers()[0].receiver.transport
    dropped = drop_first_copy_of_every_nth(transport, pt_in, 25, copies=2, start_after=10)
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client(("video",))
    vhandle = await media.subscribe("s1", "officer", voffer)
    await answer(viewer.pc, vhandle.answer_sdp)
    try:
        video = await viewer.wait_frames("video", 60)
        assert pub.video is not None
        assert sum(1 for seq in set(dropped) if dropped.count(seq) == 2) >= 2, dropped
        assert is_ordered_subsequence([f.data for f in video], pub.video.sent)
        assert media.stats().frames_abandoned == 0
    finally:
        await viewer.close()
        await pub.close()
