"""Real aiortc publisher and viewers on loopback, driving MediaService with SDP strings."""

from __future__ import annotations

import asyncio

import pytest

from rtc_server.media import MediaService
from rtc_server.media.frames import is_keyframe
from tests.media.media_clients import (
    answer,
    h264_nals,
    is_ordered_subsequence,
    publisher_client,
    viewer_client,
    wait_until,
)


async def test_vp8_and_opus_frames_arrive_byte_identical(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8")
    handle = await media.publish("s1", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client()
    vhandle = await media.subscribe("s1", "officer", voffer, "staff")
    await answer(viewer.pc, vhandle.answer_sdp)
    try:
        video = await viewer.wait_frames("video", 30)
        audio = await viewer.wait_frames("audio", 30)
        assert pub.video is not None and pub.audio is not None
        assert {f.codec for f in video} == {"VP8"}
        assert is_keyframe("VP8", video[0].data), "a viewer must start on a keyframe"
        assert is_ordered_subsequence([f.data for f in video], pub.video.sent)
        assert is_ordered_subsequence([f.data for f in audio], pub.audio.sent)
        stats = media.stats()
        assert stats.frames_forwarded >= 60 and stats.bytes_forwarded > 0
        assert stats.forward_delay_count == stats.frames_forwarded
        # Over plain UDP every packet leaves from the receive path, none through a task per packet.
        assert media.counters.packets_sent_direct > 60 and media.counters.packets_sent_queued == 0
        assert stats.publishers == 1 and stats.viewers == 1
        info = media.peer_info(vhandle.resource_id)
        assert info is not None and (info.session_id, info.participant_id, info.role) == (
            "s1",
            "officer",
            "viewer",
        )
        assert info.connected and media.peer_info("nope") is None
    finally:
        await viewer.close()
        await pub.close()


async def test_h264_frames_arrive_with_identical_nal_units(media: MediaService) -> None:
    pub, offer = await publisher_client("H264", audio=False)
    assert "42e01f" in offer
    handle = await media.publish("s1", "staff", offer)
    assert "packetization-mode=1" in handle.answer_sdp and "H264" in handle.answer_sdp
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client(("video",))
    vhandle = await media.subscribe("s1", "officer", voffer)
    assert "H264" in vhandle.answer_sdp and "VP8" not in vhandle.answer_sdp
    await answer(viewer.pc, vhandle.answer_sdp)
    try:
        video = await viewer.wait_frames("video", 20)
        assert pub.video is not None
        assert {f.codec for f in video} == {"H264"}
        assert is_keyframe("H264", video[0].data)
        sent = [h264_nals(b) for b in pub.video.sent]
        got = [h264_nals(f.data) for f in video]
        it = iter(sent)
        assert all(any(g == s for s in it) for g in got), "viewer got NAL units the publisher never sent"
    finally:
        await viewer.close()
        await pub.close()


async def test_late_viewer_gets_a_keyframe_within_one_second(media: MediaService) -> None:
    # A 5 s clip: its own loop would bring the next keyframe only after 5 s.
    pub, offer = await publisher_client("VP8", audio=False, clip_frames=150)
    handle = await media.publish("s1", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    assert pub.video is not None
    try:
        video_track = pub.video
        await wait_until(lambda: len(video_track.sent) >= 45)  # well past the first keyframe
        requests_before = len(pub.video.keyframe_requests)
        viewer, voffer = await viewer_client(("video",))
        joined = loop_time()
        vhandle = await media.subscribe("s1", "late", voffer)
        await answer(viewer.pc, vhandle.answer_sdp)
        video = await viewer.wait_frames("video", 1, within=3.0)
        assert video[0].at - joined < 1.0, f"first picture after {video[0].at - joined:.2f} s"
        assert is_keyframe("VP8", video[0].data)
        assert len(pub.video.keyframe_requests) > requests_before, "a PLI must reach the publisher"
        await viewer.close()
    finally:
        await pub.close()


async def test_viewer_before_publisher_gets_media_when_it_arrives(media: MediaService) -> None:
    viewer, voffer = await viewer_client()
    vhandle = await media.subscribe("s1", "officer", voffer)  # nobody publishes yet
    await answer(viewer.pc, vhandle.answer_sdp)
    await asyncio.sleep(0.3)
    assert viewer.frames["video"] == []
    pub, offer = await publisher_client("VP8")
    handle = await media.publish("s1", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    try:
        video = await viewer.wait_frames("video", 10)
        await viewer.wait_frames("audio", 10)
        assert pub.video is not None
        assert is_keyframe("VP8", video[0].data)
        assert is_ordered_subsequence([f.data for f in video], pub.video.sent)
    finally:
        await viewer.close()
        await pub.close()


async def test_republishing_participant_is_picked_up_without_renegotiation(media: MediaService) -> None:
    viewer, voffer = await viewer_client()
    pub1, offer1 = await publisher_client("VP8", seed=1)
    h1 = await media.publish("s1", "staff", offer1)
    await answer(pub1.pc, h1.answer_sdp)
    vhandle = await media.subscribe("s1", "officer", voffer, "staff")
    await answer(viewer.pc, vhandle.answer_sdp)
    try:
        await viewer.wait_frames("video", 10)
        await pub1.close()  # the phone drops off without a DELETE ...
        pub2, offer2 = await publisher_client("VP8", seed=2)
        h2 = await media.publish("s1", "staff", offer2)  # ... and publishes again
        assert not media.has_resource(h1.resource_id), "the stale publisher is replaced"
        await answer(pub2.pc, h2.answer_sdp)
        assert pub2.video is not None and pub1.video is not None
        before = len(viewer.frames["video"])
        video = await viewer.wait_frames("video", before + 20)
        after = [f.data for f in video[before:]]
        from_pub2 = [d for d in after if d in set(pub2.video.sent)]
        assert len(from_pub2) >= 15
        first = after.index(from_pub2[0])
        assert is_keyframe("VP8", after[first]), "the switch happens on the new publisher's keyframe"
        assert is_ordered_subsequence(after[first:], pub2.video.sent)
        assert viewer.pc.connectionState == "connected"
        await pub2.close()
    finally:
        await viewer.close()


@pytest.mark.slow
async def test_five_viewers_each_receive_the_publishers_frames(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8")
    handle = await media.publish("s1", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    viewers = []
    try:
        for i in range(5):
            viewer, voffer = await viewer_client()
            vhandle = await media.subscribe("s1", f"v{i}", voffer, "staff")
            await answer(viewer.pc, vhandle.answer_sdp)
            viewers.append(viewer)
        assert pub.video is not None and pub.audio is not None
        for viewer in viewers:
            video = await viewer.wait_frames("video", 20)
            audio = await viewer.wait_frames("audio", 20)
            assert is_keyframe("VP8", video[0].data)
            assert is_ordered_subsequence([f.data for f in video], pub.video.sent)
            assert is_ordered_subsequence([f.data for f in audio], pub.audio.sent)
        assert media.stats().viewers == 5
    finally:
        for viewer in viewers:
            await viewer.close()
        await pub.close()


async def test_viewer_plis_are_relayed_rate_limited(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8", audio=False, clip_frames=150)
    handle = await media.publish("s1", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client(("video",))
    vhandle = await media.subscribe("s1", "officer", voffer)
    await answer(viewer.pc, vhandle.answer_sdp)
    assert pub.video is not None
    try:
        await viewer.wait_frames("video", 5)
        await asyncio.sleep(0.3)
        before = len(pub.video.keyframe_requests)
        received_before = media.stats().plis_received
        receiver = viewer.pc.getReceivers()[0]
        ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
        for _ in range(20):  # 20 PLIs in 1 s from the viewer
            await receiver._send_rtcp_pli(ssrc)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        relayed = len(pub.video.keyframe_requests) - before
        assert media.stats().plis_received - received_before == 20
        # keyframe_min_interval_s is 0.2 in these tests: about 1.3 s / 0.2 s, never 20.
        assert 1 <= relayed <= 8, relayed
    finally:
        await viewer.close()
        await pub.close()


def loop_time() -> float:
    import time

    return time.monotonic()
