"""Glass-to-glass across impaired networks: publisher, server and viewer in their own namespaces."""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import netlab
from .clients import BenchError
from .servers import rtc_server


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> dict[str, Any]:
    """The first stdout line starting with `prefix`, parsed; stderr kept for the error message."""
    found: list[dict[str, Any]] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix + " "):
                found.append(json.loads(line[len(prefix) + 1 :]))
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout) or not found:
        if proc.poll() is None:
            proc.terminate()
        err = ""
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            err = proc.communicate(timeout=15)[1][-800:]
        raise BenchError(f"no {prefix} line within {timeout:.0f} s {err}")
    return found[0]


def run_profile(
    profile: str,
    seconds: float,
    warmup: float = 5.0,
    impaired: tuple[str, ...] = ("pub", "view"),
    browser: bool = False,
    kind: str = "signing",
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        netlab.lab(profile, impaired, max_seconds=seconds + 240) as lab,
    ):
        server_host = netlab.host("srv")
        with rtc_server(Path(tmp), host=server_host, netns=netlab.NS["srv"]) as server:
            viewer = lab.python(
                "view",
                "bench.roles",
                "watch",
                "--base",
                server.url,
                "--seconds",
                str(seconds),
                "--warmup",
                str(warmup),
                "--kind",
                kind,
                *(["--browser"] if browser else []),
            )
            session = _read_line(viewer, "SESSION", 60)
            args = ["--whip", f"{server.url}/api/v1/sessions/{session['id']}/whip"]
            args += ["--token", session["publish_token"], "--seconds", str(seconds + warmup + 90)]
            publisher = lab.python(
                "pub", "bench.roles", "publish", *args, *(["--browser"] if browser else [])
            )
            result = _read_line(viewer, "RESULT", seconds + warmup + 90)
            publisher.terminate()
            try:
                sent = _read_line(publisher, "RESULT", 20)
            except BenchError:
                sent = {}
    return {
        "profile": profile,
        "clients": "chromium" if browser else "aiortc",
        "impaired": ",".join(impaired),
        **result,
        "publisher_kbps": sent.get("kbps"),
        **{f"publisher_{k}": v for k, v in sent.items() if k != "kbps"},
    }
