"""A real browser publishes: headless Chromium (fake camera and microphone) to MediaService, an aiortc
viewer checks that what it gets starts on a keyframe and decodes, for VP8 and H.264."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import av
import pytest
from aiohttp import web

from rtc_server.media import MediaService, MediaSettings
from rtc_server.media.frames import is_keyframe
from tests.media.media_clients import answer, viewer_client, wait_until

PAGE = """<!doctype html><html><body><script>
(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: true});
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) {
    const transceiver = pc.addTransceiver(track, {direction: 'sendonly'});
    if (track.kind === 'video' && 'CODEC' === 'H264') {
      transceiver.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter(c =>
        c.mimeType === 'video/H264' && /42e01f/.test(c.sdpFmtpLine || '') &&
        /packetization-mode=1/.test(c.sdpFmtpLine || '')));
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
  });
  const response = await fetch('/whip', {method: 'POST', headers: {'Content-Type': 'application/sdp'},
                                         body: pc.localDescription.sdp});
  await pc.setRemoteDescription({type: 'answer', sdp: await response.text()});
})();
</script></body></html>"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_chromium_publisher_reaches_a_viewer_decodable(codec: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is part of the test environment (apt: chromium)"
    media = MediaService(MediaSettings(video_codecs=(codec,)))

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("CODEC", codec), content_type="text/html")

    async def whip(request: web.Request) -> web.Response:
        handle = await media.publish("s", "phone", await request.text())
        return web.Response(status=201, text=handle.answer_sdp, content_type="application/sdp")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/whip", whip)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    browser = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    viewer, voffer = await viewer_client()
    try:
        await wait_until(lambda: media.is_live("s", "phone"), within=20)
        joined = time.monotonic()
        vhandle = await media.subscribe("s", "officer", voffer)
        await answer(viewer.pc, vhandle.answer_sdp)
        video = await viewer.wait_frames("video", 30, within=15)
        await viewer.wait_frames("audio", 25, within=15)
        assert video[0].at - joined < 1.0, "a new viewer sees a picture within one second"
        assert {f.codec for f in video} == {codec}
        assert is_keyframe(codec, video[0].data)
        decoder = av.CodecContext.create("libvpx" if codec == "VP8" else "h264", "r")
        pictures = [p for f in video[:30] for p in decoder.decode(av.Packet(f.data))]
        assert len(pictures) == 30 and (pictures[-1].width, pictures[-1].height) == (640, 480)
        assert media.stats().frames_abandoned == 0
    finally:
        await viewer.close()
        browser.terminate()
        await asyncio.get_running_loop().run_in_executor(None, browser.wait, 10)
        await media.close()
        await runner.cleanup()
