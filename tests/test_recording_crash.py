"""Crash safety with the real server process: SIGKILL mid-stream loses nothing sealed; SIGTERM seals all."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.media.media_clients import answer, publisher_client
from tests.test_serve import BIN, _start, _stop

PASSWORD = "a long passphrase"


async def _setup(data: Path) -> None:
    add = subprocess.run(
        [BIN, "users", "add", "officer1", "--role", "officer", "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr


async def _session_with_media(url: str, seconds: float) -> tuple[str, str, object]:
    async with aiohttp.ClientSession(url) as http:
        token = (
            await (
                await http.post("/api/v1/login", json={"username": "officer1", "password": PASSWORD})
            ).json()
        )["token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = await (
            await http.post("/api/v1/inspections", json={"title": "crash"}, headers=headers)
        ).json()
        publisher, offer = await publisher_client("VP8", clip_frames=60)
        resp = await http.post(
            f"/api/v1/sessions/{created['id']}/whip",
            data=offer,
            headers={
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {created['invites']['staff']['token']}",
            },
        )
        assert resp.status == 201
        await answer(publisher.pc, await resp.text())
        await asyncio.sleep(seconds)
        return created["id"], token, publisher


async def _tracks(url: str, token: str, sid: str) -> list[dict[str, object]]:
    async with aiohttp.ClientSession(url) as http:
        resp = await http.get(
            f"/api/v1/sessions/{sid}/recordings", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 200
        tracks: list[dict[str, object]] = await resp.json()
        return tracks


@pytest.mark.slow
async def test_sigkill_mid_stream_then_restart(tmp_path: Path) -> None:
    data = tmp_path / "var"
    await _setup(data)
    env = {"RTC_RECORDING__SEGMENT_DURATION_S": "1.0"}
    args = ["--data-dir", str(data), "--no-tls", "--host", "127.0.0.1", "--port", "0"]
    proc, url = _start(args, env)
    try:
        sid, token, publisher = await _session_with_media(url, 3.5)
        before = await _tracks(url, token, sid)
        sealed_before = {t["track_id"]: [s["sha256"] for s in t["segments"]] for t in before}  # type: ignore[union-attr]
        assert all(sealed_before.values()), before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    await publisher.close()  # type: ignore[attr-defined]

    proc, url = _start(args, env)
    try:
        after = await _tracks(url, token, sid)
        assert {t["track_id"] for t in after} == set(sealed_before)
        for track in after:
            assert track["sealed"], track
            hashes = [s["sha256"] for s in track["segments"]]  # type: ignore[union-attr]
            # Nothing sealed before the crash is lost or changed.
            assert hashes[: len(sealed_before[track["track_id"]])] == sealed_before[track["track_id"]]  # type: ignore[index]
            manifest = json.loads(
                (data / "recordings" / sid / str(track["track_id"]) / "manifest.json").read_text()
            )
            signed = manifest["signed"]
            # The segment being written was either salvaged (recovered) or listed as dropped.
            assert (
                signed["end_reason"] in ("recovered", "crash_recovered")
                or signed["dropped"]
                or any(s["recovered"] for s in signed["segments"])
            ), signed["end_reason"]
        check = subprocess.run(
            [BIN, "verify-recording", str(data / "recordings" / sid)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        code, err = _stop(proc)
    assert code == 0, err


@pytest.mark.slow
async def test_sigterm_seals_everything(tmp_path: Path) -> None:
    data = tmp_path / "var"
    await _setup(data)
    proc, url = _start(
        ["--data-dir", str(data), "--no-tls", "--host", "127.0.0.1", "--port", "0"],
        {"RTC_RECORDING__SEGMENT_DURATION_S": "1.0"},
    )
    try:
        sid, _token, publisher = await _session_with_media(url, 2.5)
    finally:
        code, err = _stop(proc)
    await publisher.close()  # type: ignore[attr-defined]
    assert code == 0, err
    manifests = list((data / "recordings" / sid).glob("*/manifest.json"))
    assert len(manifests) == 2
    for path in manifests:
        signed = json.loads(path.read_text())["signed"]
        assert signed["dropped"] == [] and not any(s["recovered"] for s in signed["segments"])
    check = subprocess.run(
        [BIN, "verify-recording", str(data / "recordings" / sid)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
