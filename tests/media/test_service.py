"""MediaService contract: errors, capacity, trickle, ICE configuration, liveness, taps."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from rtc_server.media import (
    AtCapacity,
    IceRestartUnsupported,
    IceServer,
    InvalidSdp,
    MediaService,
    MediaSettings,
    PeerEvent,
    SessionEnded,
    StaleETag,
    UnknownResource,
)
from rtc_server.media.aiortc_tap import ice_connection
from tests.media.media_clients import (
    PublisherClient,
    ViewerClient,
    answer,
    publisher_client,
    viewer_client,
    wait_until,
)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "v=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video x y\r\n",
        "\x00" * 100,
    ],
)
async def test_garbage_sdp_is_invalid(media: MediaService, garbage: str) -> None:
    with pytest.raises(InvalidSdp):
        await media.publish("s1", "staff", garbage)
    with pytest.raises(InvalidSdp):
        await media.subscribe("s1", "officer", garbage)
    assert media.peer_count == 0


async def test_offer_of_the_wrong_direction_is_invalid(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8")
    viewer, voffer = await viewer_client()
    try:
        with pytest.raises(InvalidSdp, match="direction"):
            await media.subscribe("s1", "officer", offer)
        with pytest.raises(InvalidSdp, match="direction"):
            await media.publish("s1", "staff", voffer)
        with pytest.raises(InvalidSdp, match=r"fingerprint|credentials|unparsable"):
            await media.publish("s1", "staff", re.sub(r"a=fingerprint:.*\r\n", "", offer))
        assert media.peer_count == 0
    finally:
        await pub.close()
        await viewer.close()


async def test_offer_without_a_usable_codec_is_invalid(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8", audio=False)
    try:
        no_vp8 = offer.replace("VP8/90000", "AV1/90000")
        with pytest.raises(InvalidSdp, match="offers none of"):
            await media.publish("s1", "staff", no_vp8)
        assert media.peer_count == 0
    finally:
        await pub.close()


async def test_capacity_is_enforced_and_freed() -> None:
    media = MediaService(MediaSettings(max_peers=2))
    clients: list[PublisherClient | ViewerClient] = []
    try:
        handles = []
        for i in range(2):
            viewer, voffer = await viewer_client()
            clients.append(viewer)
            handles.append(await media.subscribe("s1", f"v{i}", voffer))
        viewer, voffer = await viewer_client()
        clients.append(viewer)
        with pytest.raises(AtCapacity):
            await media.subscribe("s1", "v3", voffer)
        pub, offer = await publisher_client("VP8")
        clients.append(pub)
        with pytest.raises(AtCapacity):
            await media.publish("s1", "staff", offer)
        await media.delete(handles[0].resource_id)
        assert media.peer_count == 1
        await media.publish("s1", "staff", offer)
        assert media.peer_count == 2
    finally:
        for client in clients:
            await client.close()
        await media.close()


async def test_delete_and_trickle_on_unknown_resources(media: MediaService) -> None:
    with pytest.raises(UnknownResource):
        await media.delete("nope")
    with pytest.raises(UnknownResource):
        await media.add_ice_candidates("nope", "a=end-of-candidates\r\n", None)


async def test_trickle_etag_restart_and_candidates(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8")
    try:
        # A trickling client: the offer carries no candidates, they follow in PATCH bodies.
        lines = offer.splitlines()
        candidates = [line for line in lines if line.startswith("a=candidate:")]
        bare = "".join(
            line + "\r\n"
            for line in lines
            if not line.startswith("a=candidate:") and line != "a=end-of-candidates"
        )
        handle = await media.publish("s1", "staff", bare)
        assert handle.etag.startswith('"') and handle.etag.endswith('"')
        ufrag = re.search(r"a=ice-ufrag:(\S+)", offer)
        pwd = re.search(r"a=ice-pwd:(\S+)", offer)
        assert ufrag and pwd
        head = (
            f"a=ice-ufrag:{ufrag.group(1)}\r\na=ice-pwd:{pwd.group(1)}\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
        )
        bogus = head + "a=candidate:1 1 udp 2130706431 192.0.2.77 50000 typ host\r\n"
        with pytest.raises(StaleETag):
            await media.add_ice_candidates(handle.resource_id, bogus, '"something-else"')
        assert await media.add_ice_candidates(handle.resource_id, bogus, handle.etag) == handle.etag
        assert await media.add_ice_candidates(handle.resource_id, bogus, "*") == handle.etag
        assert await media.add_ice_candidates(handle.resource_id, bogus, f"W/{handle.etag}") == handle.etag
        peer = media._peers[handle.resource_id]
        remote = {c.host for c in ice_connection(peer.pc.getTransceivers()[0]).remote_candidates}
        assert "192.0.2.77" in remote
        restart = bogus.replace(ufrag.group(1), "newufrag1")
        with pytest.raises(IceRestartUnsupported):
            await media.add_ice_candidates(handle.resource_id, restart, handle.etag)
        with pytest.raises(InvalidSdp):
            await media.add_ice_candidates(handle.resource_id, "a=candidate:garbage\r\n", None)
        with pytest.raises(InvalidSdp):
            await media.add_ice_candidates(handle.resource_id, "not sdp at all", None)
        with pytest.raises(InvalidSdp):
            await media.add_ice_candidates(handle.resource_id, "a=x\r\n" * 20000, None)
        # The real candidates, on the second (bundled) m-line's mid, then end-of-candidates.
        real = "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:1\r\n" + "".join(c + "\r\n" for c in candidates)
        await media.add_ice_candidates(handle.resource_id, real + "a=end-of-candidates\r\n", handle.etag)
        await answer(pub.pc, handle.answer_sdp)
        await wait_until(lambda: peer.pc.connectionState == "connected", within=10)
    finally:
        await pub.close()


async def test_no_stun_server_unless_configured_and_only_host_candidates(media: MediaService) -> None:
    pub, offer = await publisher_client("VP8")
    try:
        handle = await media.publish("s1", "staff", offer)
        peer = media._peers[handle.resource_id]
        connection = ice_connection(peer.pc.getTransceivers()[0])
        assert connection.stun_server is None and connection.turn_server is None
        assert {c.type for c in connection.local_candidates} == {"host"}
        assert "typ srflx" not in handle.answer_sdp and "typ relay" not in handle.answer_sdp
        assert " 127.0.0.1 " in handle.answer_sdp, "loopback host candidate offered"
    finally:
        await pub.close()
    configured = MediaService(
        MediaSettings(
            ice_servers=(IceServer(urls=("stun:stun.example.test:3478",)),), loopback_candidates=False
        )
    )
    try:
        peer_cls = __import__("rtc_server.media.peers", fromlist=["PublisherPeer"]).PublisherPeer
        peer = peer_cls("s", "p", configured.settings, configured.counters, lambda p, r: None)
        transceiver = peer.pc.addTransceiver("video", direction="recvonly")
        assert ice_connection(transceiver).stun_server == ("stun.example.test", 3478)
        await peer.close()
    finally:
        await configured.close()


def test_ice_server_settings_are_validated() -> None:
    server = IceServer.from_mapping(
        {"urls": ["turn:turn.example.test:3478"], "username": "u", "credential": "c"}
    )
    assert server.urls == ("turn:turn.example.test:3478",) and server.username == "u"
    assert IceServer.from_mapping({"urls": "stun:a.test"}).urls == ("stun:a.test",)
    bads: list[dict[str, object]] = [
        {"urls": "http://x"},
        {"urls": []},
        {"url": "stun:a"},
        {"urls": "stun:a", "username": 3},
    ]
    for bad in bads:
        with pytest.raises(ValueError):
            IceServer.from_mapping(bad)
    with pytest.raises(ValueError):
        MediaSettings(max_peers=0)
    with pytest.raises(ValueError):
        MediaSettings(video_codecs=("AV1",))


async def test_peers_on_loopback_only_connect(media: MediaService) -> None:
    def loopback_only(sdp: str) -> str:
        return "".join(
            line + "\r\n"
            for line in sdp.splitlines()
            if not line.startswith("a=candidate:") or " 127.0.0.1 " in line
        )

    pub, offer = await publisher_client("VP8", audio=False)
    viewer, voffer = await viewer_client(("video",))
    try:
        assert " 127.0.0.1 " in offer
        handle = await media.publish("s1", "staff", loopback_only(offer))
        await answer(pub.pc, loopback_only(handle.answer_sdp))
        vhandle = await media.subscribe("s1", "officer", loopback_only(voffer))
        await answer(viewer.pc, loopback_only(vhandle.answer_sdp))
        await viewer.wait_frames("video", 5)
    finally:
        await viewer.close()
        await pub.close()


async def test_publisher_that_stops_sending_is_closed_and_liveness_reported() -> None:
    events: list[PeerEvent] = []
    media = MediaService(
        MediaSettings(liveness_timeout_s=0.8, watchdog_interval_s=0.1), on_peer_closed=events.append
    )
    pub, offer = await publisher_client("VP8")
    try:
        assert media.last_video_frame_at("s1", "staff") is None
        handle = await media.publish("s1", "staff", offer)
        await answer(pub.pc, handle.answer_sdp)
        await wait_until(lambda: media.is_live("s1", "staff"))
        last = media.last_video_frame_at("s1", "staff")
        assert last is not None and time.time() - last < 2.0
        assert pub.video is not None and pub.audio is not None
        pub.video.paused = pub.audio.paused = True
        noticed = await wait_until(lambda: not media.has_resource(handle.resource_id))
        assert not media.has_resource(handle.resource_id)
        assert noticed < 3.0, noticed
        assert [e.reason for e in events] == ["no_media"] and events[0].role == "publisher"
        assert media.stats().peers_closed_dead == 1
        assert not media.is_live("s1", "staff", within_s=0.5)
    finally:
        await pub.close()
        await media.close()


async def test_encoded_frame_tap_sees_frames_across_republish(media: MediaService) -> None:
    tap = media.open_tap("s1", "staff", "video")
    pub, offer = await publisher_client("VP8", audio=False)
    handle = await media.publish("s1", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    try:
        frames = [await asyncio.wait_for(tap.get(), 5) for _ in range(10)]
        assert pub.video is not None
        assert frames[0].keyframe and frames[0].codec == "VP8" and frames[0].clock_rate == 90000
        assert [f.data for f in frames] == pub.video.sent[: len(frames)]
        assert all(abs(f.wallclock - time.time()) < 5 for f in frames)
        assert tap.qsize() <= media.settings.tap_queue
    finally:
        await pub.close()
    await media.end_session("s1")
    with pytest.raises(EOFError):
        while True:
            await asyncio.wait_for(tap.get(), 2)
    with pytest.raises(SessionEnded):
        await media.publish("s1", "staff", offer)
    with pytest.raises(ValueError):
        media.open_tap("s2", "staff", "data")


async def test_end_session_closes_its_peers_only(media: MediaService) -> None:
    clients: list[PublisherClient | ViewerClient] = []
    try:
        for session in ("a", "b"):
            pub, offer = await publisher_client("VP8", audio=False)
            clients.append(pub)
            await media.publish(session, "staff", offer)
            viewer, voffer = await viewer_client()
            clients.append(viewer)
            await media.subscribe(session, "officer", voffer)
        assert media.peer_count == 4
        await media.end_session("a")
        assert media.peer_count == 2
        with pytest.raises(SessionEnded):
            await media.subscribe("a", "officer", voffer)
    finally:
        for client in clients:
            await client.close()


async def test_republish_with_nobody_watching_then_a_viewer_joins(media: MediaService) -> None:
    events: list[PeerEvent] = []
    media._on_peer_closed = events.append
    pub1, offer1 = await publisher_client("VP8", audio=False, seed=1)
    pub2, offer2 = await publisher_client("VP8", audio=False, seed=2)
    viewer, voffer = await viewer_client(("video",))
    try:
        h1 = await media.publish("s1", "staff", offer1)
        await answer(pub1.pc, h1.answer_sdp)
        h2 = await media.publish("s1", "staff", offer2)
        await answer(pub2.pc, h2.answer_sdp)
        assert [(e.resource_id, e.reason) for e in events] == [(h1.resource_id, "replaced")]
        assert (
            media.peer_count == 1 and media._sessions["s1"].publishers["staff"].resource_id == h2.resource_id
        )
        vhandle = await media.subscribe("s1", "officer", voffer)
        await answer(viewer.pc, vhandle.answer_sdp)
        video = await viewer.wait_frames("video", 5)
        assert pub2.video is not None
        assert all(f.data in set(pub2.video.sent) for f in video)
    finally:
        for client in (viewer, pub1, pub2):
            await client.close()


async def test_peers_that_hang_up_without_delete_are_released() -> None:
    events: list[PeerEvent] = []
    media = MediaService(MediaSettings(), on_peer_closed=events.append)
    pub, offer = await publisher_client("VP8", audio=False)
    viewer, voffer = await viewer_client(("video",))
    try:
        handle = await media.publish("s1", "staff", offer)
        await answer(pub.pc, handle.answer_sdp)
        vhandle = await media.subscribe("s1", "officer", voffer)
        await answer(viewer.pc, vhandle.answer_sdp)
        await viewer.wait_frames("video", 3)
        await viewer.close()
        await wait_until(lambda: len(events) == 1, within=3)
        assert not media.has_resource(vhandle.resource_id)
        await pub.close()
        await wait_until(lambda: len(events) == 2, within=3)
        assert media.peer_count == 0
        assert sorted((e.role, e.reason) for e in events) == [
            ("publisher", "remote_closed"),
            ("viewer", "remote_closed"),
        ]
    finally:
        await viewer.close()
        await pub.close()
        await media.close()


async def test_session_ended_while_an_offer_is_answered() -> None:
    media = MediaService(MediaSettings())
    pub, offer = await publisher_client("VP8", audio=False)
    try:
        before = len(asyncio.all_tasks())
        publishing = asyncio.create_task(media.publish("s1", "staff", offer))
        await asyncio.sleep(0)  # the offer is being answered (ICE gathering) ...
        await media.end_session("s1")  # ... when the officer ends the session
        with pytest.raises(SessionEnded):
            await publishing
        assert media.peer_count == 0 and media._sessions == {}
        await asyncio.sleep(0.1)
        assert len(asyncio.all_tasks()) <= before, "no keyframe task left behind by the orphaned slot"
    finally:
        await pub.close()
        await media.close()


async def test_record_survives_while_an_offer_is_answered(media: MediaService) -> None:
    viewer, voffer = await viewer_client(("video",))
    pub, offer = await publisher_client("VP8", audio=False)
    try:
        vhandle = await media.subscribe("s1", "officer", voffer)
        publishing = asyncio.create_task(media.publish("s1", "staff", offer))
        await asyncio.sleep(0)
        await media.delete(vhandle.resource_id)  # the last registered peer leaves mid-negotiation
        handle = await publishing
        assert media._sessions["s1"].publishers["staff"].resource_id == handle.resource_id
        await answer(pub.pc, handle.answer_sdp)
        await wait_until(lambda: media.is_live("s1", "staff"))
    finally:
        await viewer.close()
        await pub.close()
