"""A participant's audio and video share one clock: a flash and a beep captured at the same instant,
published over WHIP by a real aiortc client and recorded by the real server, play within 100 ms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

from tests.api import av_pattern as pattern
from tests.media.media_clients import answer, make_offer
from tests.support import make_config, start_api

SECONDS = 6.0
SDP = {"Content-Type": "application/sdp"}
MAX_OFFSET_S = 0.1


@pytest.mark.slow
async def test_flash_and_beep_recorded_within_100_ms(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    config = make_config(tmp_path / "d", recording={"segment_duration_s": 1.0})
    api = await start_api(aiohttp_client, config)
    created = await api.create_inspection()
    sid, staff = created["id"], created["invites"]["staff"]["token"]
    participant = created["invites"]["staff"]["participant_id"]
    video_clip, audio_clip = await asyncio.gather(
        asyncio.to_thread(pattern.video_pattern, SECONDS),
        asyncio.to_thread(pattern.audio_pattern, SECONDS),
    )

    start = pattern.SharedStart()
    audio = pattern.PatternTrack("audio", audio_clip, start)
    video = pattern.PatternTrack("video", video_clip, start)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(audio, direction="sendonly")
    transceiver = pc.addTransceiver(video, direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
    )
    try:
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whip", data=await make_offer(pc), headers={**SDP, **api.auth(staff)}
        )
        assert resp.status == 201, await resp.text()
        await answer(pc, await resp.text())
        await asyncio.wait_for(asyncio.gather(audio.done.wait(), video.done.wait()), SECONDS + 10)
        await asyncio.sleep(0.5)  # the last frames reach the server's taps
    finally:
        await pc.close()
    resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    assert resp.status == 200, await resp.text()

    tracks = await (
        await api.client.get(f"/api/v1/sessions/{sid}/recordings", headers=api.auth(api.officer))
    ).json()
    by_kind = {t["kind"]: t for t in tracks if t["participant_id"] == participant}
    assert set(by_kind) == {"audio", "video"} and all(t["sealed"] for t in by_kind.values()), tracks
    folder = config.data_path / "recordings" / sid
    decoded_video, decoded_audio = await asyncio.gather(
        asyncio.to_thread(pattern.decode_video, folder / by_kind["video"]["track_id"]),
        asyncio.to_thread(pattern.decode_audio, folder / by_kind["audio"]["track_id"]),
    )
    assert decoded_video.clock_base_us == decoded_audio.clock_base_us
    assert decoded_video.segments >= 4 and decoded_audio.segments >= 4  # 1 s segments over ~6 s

    flashes = pattern.flash_onsets(decoded_video)
    beeps = pattern.beep_onsets(decoded_audio)
    # What the client itself contributed: how late each event frame left, relative to its due time.
    client_skew = [
        audio.log.late(round(at * pattern.AUDIO_RATE / pattern.AUDIO_FRAME))
        - video.log.late(round(at * pattern.FPS))
        for at in pattern.EVENTS_S
    ]
    first_skew = audio.log.late(0) - video.log.late(0)
    # Where the events landed on the participant clock versus their capture instants (shared start
    # as wall time): the latency the recorder's clock anchoring baked into each track.
    assert start.wall_t0 is not None
    capture = [start.wall_t0 + at - decoded_video.clock_base_us / 1e6 for at in pattern.EVENTS_S]
    offsets = [b - f for f, b in zip(flashes, beeps, strict=False)]
    print(
        f"\nA/V sync: flashes at {[round(f, 4) for f in flashes]} s, beeps at {[round(b, 4) for b in beeps]}"
        f" s (participant clock); offsets beep - flash {pattern.ms(offsets)}"
        f"\n  client send skew audio - video: first frame {pattern.ms([first_skew])},"
        f" event frames {pattern.ms(client_skew)}"
        f"\n  capture -> recorded media time:"
        f" video {pattern.ms([f - c for f, c in zip(flashes, capture, strict=False)])},"
        f" audio {pattern.ms([b - c for b, c in zip(beeps, capture, strict=False)])}"
    )

    assert len(flashes) == len(pattern.EVENTS_S), f"flashes found at {flashes}"
    assert len(beeps) == len(pattern.EVENTS_S), f"beeps found at {beeps}"
    # The detectors see the pattern itself, not noise: the events are as far apart as captured.
    spacing = pattern.EVENTS_S[1] - pattern.EVENTS_S[0]
    assert abs(flashes[1] - flashes[0] - spacing) < 1.5 / pattern.FPS, flashes
    # 10 ms, not 1: the first beep falls on a segment boundary, where the decoder starts without
    # the packets before it and the tone's onset reads a few ms late (3 ms on 2026-11-26). A
    # pre-skip dropping sound there is test_audio_segments_play_every_sample_they_hold's to catch.
    assert abs(beeps[1] - beeps[0] - spacing) < 0.010, beeps
    for offset in offsets:
        assert abs(offset) < MAX_OFFSET_S, f"A/V offsets {pattern.ms(offsets)}"
    # Both tracks sit where they were captured (give or take loopback delivery), not merely together.
    for event, at in zip(flashes + beeps, capture + capture, strict=True):
        assert -0.05 < event - at < 1.0, (event, at)
