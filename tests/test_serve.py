"""The real `rtc-server` process: users add, serve over HTTP and HTTPS, graceful SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

BIN = str(Path(sys.executable).parent / "rtc-server")


def _start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [BIN, "serve", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"ready at (\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("server did not report ready:\n" + "".join(seen))


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


@pytest.mark.slow
async def test_serve_plain_http_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "var"
    add = subprocess.run(
        [BIN, "users", "add", "officer1", "--role", "officer", "--password-stdin", "--data-dir", str(data)],
        input="a long passphrase\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    assert "created officer officer1" in add.stdout
    weak = subprocess.run(
        [BIN, "users", "add", "x", "--role", "officer", "--password-stdin", "--data-dir", str(data)],
        input="short\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert weak.returncode == 2 and "10 characters" in weak.stderr

    proc, url = _start(
        ["--data-dir", str(data), "--no-tls", "--host", "127.0.0.1", "--port", "0"],
        env={"RTC_AUTH__TOKEN_TTL_S": "120"},
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession(url) as http:
            assert (await (await http.get("/healthz")).json()) == {"status": "ok"}
            resp = await http.post(
                "/api/v1/login", json={"username": "officer1", "password": "a long passphrase"}
            )
            body = await resp.json()
            assert resp.status == 200
            headers = {"Authorization": f"Bearer {body['token']}"}
            resp = await http.post("/api/v1/inspections", json={"title": "Depot"}, headers=headers)
            assert resp.status == 201
            sid = (await resp.json())["id"]
            resp = await http.get(f"/api/v1/sessions/{sid}", headers=headers)
            assert (await resp.json())["title"] == "Depot"
    finally:
        code, err = _stop(proc)
    assert code == 0, err
    assert "stopped" in err
    # The bearer token never reaches the log.
    assert body["token"] not in err


@pytest.mark.slow
async def test_serve_https_creates_a_self_signed_certificate(tmp_path: Path) -> None:
    data = tmp_path / "var"
    proc, url = _start(["--data-dir", str(data), "--host", "127.0.0.1", "--port", "0"])
    try:
        assert url.startswith("https://")
        key = data / "tls" / "key.pem"
        assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
        ctx = ssl.create_default_context(cafile=str(data / "tls" / "cert.pem"))
        ctx.check_hostname = False  # the certificate names localhost; we connect to 127.0.0.1
        async with aiohttp.ClientSession(url) as http:
            resp = await http.get("/healthz", ssl=ctx)
            assert resp.status == 200
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        code, err = _stop(proc)
    assert code == 0, err


@pytest.mark.slow
async def test_sigterm_tells_open_sockets_to_go_away(tmp_path: Path) -> None:
    data = tmp_path / "var"
    add = subprocess.run(
        [BIN, "users", "add", "officer1", "--role", "officer", "--password-stdin", "--data-dir", str(data)],
        input="a long passphrase\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    proc, url = _start(["--data-dir", str(data), "--no-tls", "--host", "127.0.0.1", "--port", "0"])
    try:
        async with aiohttp.ClientSession(url) as http:
            token = (
                await (
                    await http.post(
                        "/api/v1/login", json={"username": "officer1", "password": "a long passphrase"}
                    )
                ).json()
            )["token"]
            headers = {"Authorization": f"Bearer {token}"}
            sid = (
                await (await http.post("/api/v1/inspections", json={"title": "t"}, headers=headers)).json()
            )["id"]
            ws = await http.ws_connect(f"/api/v1/sessions/{sid}/ws")
            await ws.send_json({"type": "hello", "token": token})
            assert (await ws.receive_json(timeout=10))["type"] == "welcome"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert ws.close_code == 1001
            proc.wait(timeout=10)
            assert time.monotonic() - started < 8
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
