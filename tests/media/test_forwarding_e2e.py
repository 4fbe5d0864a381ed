"""Real aiortc publisher and viewers on loopback, driving MediaService with SDP strings."""

from __future__ import annotations

import asyncio

from rtc_server.media import MediaService
from rtc_server.media.frames import is_keyframe
from tests.media.media_clients import (
    answer,
    h264_nals,
    is_ordered_subsequence,
    publisher_client,
    viewer_client,
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
        assert stats.publishers == 1 and stats.viewers == 1
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
