from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import pytest

from recordings import ManifestSigner
from tests.recordings.rec_media import Packets, record

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PLAY_ALL = """
(async (files) => Promise.all(files.map((file) => new Promise((resolve) => {
  const el = document.createElement(file.includes('audio') ? 'audio' : 'video');
  el.muted = true;
  el.src = file;
  const give = (r) => { clearTimeout(timer); resolve({file, ...r}); };
  const timer = setTimeout(() => give({ok: false, err: 'timeout', t: el.currentTime}), 8000);
  el.onended = () => give({ok: true, t: el.currentTime, w: el.videoWidth || 0, h: el.videoHeight || 0});
  el.onerror = () => give({ok: false, err: el.error && el.error.message});
  el.oncanplay = () => { el.playbackRate = 4; el.play().catch((e) => give({ok: false, err: String(e)})); };
  document.body.appendChild(el);
}))))
"""


async def _play_in_chromium(page_dir: Path, files: list[str]) -> list[dict]:
    profile = tempfile.mkdtemp()
    (page_dir / "index.html").write_text("<html><body></body></html>")
    browser = subprocess.Popen(
        [
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-file-access-from-files",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:

                async def call(ident: int, method: str, params: dict) -> dict:
                    await ws.send_json({"id": ident, "method": method, "params": params})
                    async for message in ws:
                        reply = json.loads(message.data)
                        if reply.get("id") == ident:
                            return reply
                    raise AssertionError("browser closed the connection")

                await call(1, "Page.enable", {})
                await call(2, "Page.navigate", {"url": (page_dir / "index.html").as_uri()})
                await asyncio.sleep(0.5)
                reply = await call(
                    3,
                    "Runtime.evaluate",
                    {
                        "expression": f"({PLAY_ALL})({json.dumps(files)})",
                        "awaitPromise": True,
                        "returnByValue": True,
                    },
                )
                return reply["result"]["result"]["value"]
    finally:
        browser.terminate()
        browser.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


async def test_segments_play_in_chromium(
    tmp_path: Path, vp8_packets: Packets, h264_packets: Packets, opus_packets: Packets, signer: ManifestSigner
) -> None:
    record(tmp_path / "vp8", "vp8", vp8_packets, signer)
    record(tmp_path / "h264", "h264", h264_packets, signer)
    record(tmp_path / "audio", "opus", opus_packets, signer)
    (tmp_path / "broken.webm").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(200))
    files = ["vp8/seg_000001.webm", "h264/seg_000001.mkv", "audio/seg_000001.webm", "broken.webm"]
    results = {r["file"]: r for r in await _play_in_chromium(tmp_path, files)}
    for name in files[:3]:
        assert results[name]["ok"], results[name]
        assert abs(results[name]["t"] - 1.0) < 0.1, results[name]  # played to the end
    assert (results["vp8/seg_000001.webm"]["w"], results["vp8/seg_000001.webm"]["h"]) == (320, 240)
    assert results["h264/seg_000001.mkv"]["w"] == 320
    assert not results["broken.webm"]["ok"]  # the harness does notice a file that cannot play
