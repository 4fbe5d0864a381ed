"""Driving a signing over HTTP: a real aiortc signer publishing over WHIP, PNGs, external checkers."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse

from rtc_server.appkeys import SERVICES
from tests.media.media_clients import PublisherClient, answer, publisher_client, wait_until
from tests.support import Api

SDP = {"Content-Type": "application/sdp"}


async def body(resp: ClientResponse) -> Any:
    return await resp.json()


async def publish(api: Api, sid: str, token: str, *, video: bool = True) -> tuple[PublisherClient, str]:
    """Publish over WHIP as the signer; with video, wait until the server sees live frames."""
    publisher, offer = await publisher_client("VP8" if video else None, clip_frames=90)
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/whip", data=offer, headers={**SDP, **api.auth(token)}
    )
    assert resp.status == 201, await resp.text()
    await answer(publisher.pc, await resp.text())
    return publisher, resp.headers["Location"]


async def wait_live(api: Api, sid: str, participant_id: str) -> None:
    media = api.app[SERVICES].media
    await wait_until(lambda: media.is_live(sid, participant_id), within=15)


def png(width: int = 300, height: int = 100) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(10, 80), (80, 20), (150, 70), (290, 30)], fill=(0, 0, 120, 255), width=4)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rtc_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtc_server.cli", *args], capture_output=True, text=True, timeout=60
    )


def make_nss_db(directory: Path, ca_pem: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca_pem)
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{directory}",
            "-n",
            "rtc-root",
            "-t",
            "CT,C,C",
            "-i",
            str(directory / "ca.pem"),
        ],
        check=True,
    )
    return directory


def pdfsig_blocks(path: Path, nssdir: Path) -> dict[str, str]:
    """pdfsig's text per signature field (its exit code is 0 even for a broken signature)."""
    out = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nssdir}", str(path)], capture_output=True, text=True, timeout=60
    ).stdout
    blocks: dict[str, str] = {}
    for block in out.split("Signature #")[1:]:
        for line in block.splitlines():
            if "Signature Field Name:" in line:
                blocks[line.split(":", 1)[1].strip()] = block
    return blocks
