"""Clean-up: peers, tasks, threads and sockets do not accumulate over publish/subscribe/delete cycles."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import pytest

from rtc_server.media import MediaService, MediaSettings
from tests.media.media_clients import answer, publisher_client, viewer_client


def resources() -> tuple[int, int, int]:
    gc.collect()
    return len(asyncio.all_tasks()), threading.active_count(), len(os.listdir("/proc/self/fd"))


def within(now: tuple[int, int, int], baseline: tuple[int, int, int]) -> bool:
    return all(n <= b for n, b in zip(now, baseline, strict=True))


async def settle(baseline: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    # aiortc closes some transports a few loop iterations after close() returns.
    for _ in range(40 if baseline is not None else 6):
        await asyncio.sleep(0.05)
        now = resources()
        if baseline is not None and within(now, baseline):
            return now
    return resources()


async def cycle(media: MediaService, session: str) -> None:
    pub, offer = await publisher_client("VP8")
    handle = await media.publish(session, "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client()
    vhandle = await media.subscribe(session, "officer", voffer)
    await answer(viewer.pc, vhandle.answer_sdp)
    await viewer.wait_frames("video", 1)
    server_peers = [media._peers[handle.resource_id], media._peers[vhandle.resource_id]]
    await media.delete(vhandle.resource_id)
    await media.delete(handle.resource_id)
    # Checked before the clients hang up: their DTLS close would tear the server side down anyway.
    for peer in server_peers:
        assert peer.pc.connectionState == "closed"
        for transceiver in peer.pc.getTransceivers():
            assert transceiver.receiver.transport.state == "closed"
            assert transceiver.sender.track is None or transceiver.sender.track.readyState == "ended"
    await viewer.close()
    await pub.close()


@pytest.mark.slow
async def test_fifty_cycles_leave_no_tasks_threads_or_fds_behind() -> None:
    media = MediaService(MediaSettings(max_peers=4))
    try:
        for i in range(2):  # warm-up: lazily created executors, codec caches, watchdog
            await cycle(media, f"warm{i}")
        baseline = await settle()
        for i in range(50):
            await cycle(media, f"s{i % 3}")
        after = await settle(baseline)
        assert media.peer_count == 0 and media._sessions == {}
        assert after[0] <= baseline[0], f"tasks grew: {baseline} -> {after}"
        assert after[1] <= baseline[1], f"threads grew: {baseline} -> {after}"
        assert after[2] <= baseline[2], f"fds grew: {baseline} -> {after}"
    finally:
        await media.close()
    closed = await settle()
    assert closed[0] <= baseline[0] - 1, "close() stops the watchdog too"


async def test_close_stops_every_task_it_started() -> None:
    before = await settle()
    media = MediaService(MediaSettings())
    pub, offer = await publisher_client("VP8")
    handle = await media.publish("s", "staff", offer)
    await answer(pub.pc, handle.answer_sdp)
    viewer, voffer = await viewer_client()
    vhandle = await media.subscribe("s", "officer", voffer)
    await answer(viewer.pc, vhandle.answer_sdp)
    await viewer.wait_frames("video", 3)
    tap = media.open_tap("s", "staff", "video")
    await media.close()
    assert tap.closed and media.peer_count == 0
    await viewer.close()
    await pub.close()
    after = await settle(before)
    assert within(after, before), f"{before} -> {after}"
