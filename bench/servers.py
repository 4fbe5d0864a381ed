"""The systems under test as subprocesses: a real `rtc-server serve`, and the MediaRelay relay baseline.

Each runs in its own process (optionally in a network namespace) so that its CPU and memory are
measured alone, from /proc.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .clients import BenchError
from .stats import counter, cpu_seconds, histogram_quantile, parse_histogram, rss_mib

BIN_DIR = Path(sys.executable).parent
OFFICER, PASSWORD = "bench", "benchmark passphrase"
READY = re.compile(r"ready at (\S+)")


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    log: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        return rss_mib(self.pid)


def _spawn(argv: list[str], env: dict[str, str], timeout: float = 60.0) -> Running:
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    log: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if len(log) < 2000:
                log.append(line.rstrip())
            match = READY.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout) or not found:
        proc.kill()
        raise BenchError(f"{argv[0]} did not start: " + " | ".join(log[-5:]))
    return Running(proc, found[0], log)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    env.update(extra or {})
    # RTC_* settings in the bench's own environment reach the server under test (A/B runs).
    env.update({k: v for k, v in os.environ.items() if k.startswith("RTC_") and k != "RTC_LOG__LEVEL"})
    return env


@contextlib.contextmanager
def rtc_server(
    data_dir: Path, host: str = "127.0.0.1", netns: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Running]:
    """A real server with one officer account; recording is on (the default configuration)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run(
        [
            str(BIN_DIR / "rtc-server"),
            "users",
            "add",
            OFFICER,
            "--role",
            "officer",
            "--password-stdin",
            "--data-dir",
            str(data_dir),
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    argv = [*prefix, str(BIN_DIR / "rtc-server"), "serve", "--data-dir", str(data_dir), "--no-tls"]
    argv += ["--host", host, "--port", "0"]
    running = _spawn(argv, _env({"RTC_LOG__LEVEL": "warning", **(env or {})}))
    try:
        yield running
    finally:
        stop(running)


@contextlib.contextmanager
def relay_server(host: str = "127.0.0.1", netns: str | None = None) -> Iterator[Running]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    argv = [*prefix, sys.executable, "-m", "bench.relay_server", "--host", host]
    running = _spawn(argv, _env({"PYTHONPATH": str(Path(__file__).resolve().parents[1])}))
    try:
        yield running
    finally:
        stop(running)


def stop(running: Running) -> None:
    if running.proc.poll() is None:
        running.proc.terminate()
        try:
            running.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait(timeout=5)


@dataclass(frozen=True)
class BenchSession:
    id: str
    publish_token: str
    watch_token: str

    def whip(self, base: str) -> str:
        return f"{base}/api/v1/sessions/{self.id}/whip"

    def whep(self, base: str) -> str:
        return f"{base}/api/v1/sessions/{self.id}/whep"


async def officer_token(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/api/v1/login", json={"username": OFFICER, "password": PASSWORD}) as r:
        if r.status != 200:
            raise BenchError(f"login: {r.status} {await r.text()}")
        token: str = (await r.json())["token"]
        return token


def _tiny_pdf() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (60, 80), "white").save(buffer, "PDF")
    return buffer.getvalue()


async def new_session(
    http: aiohttp.ClientSession, base: str, officer: str, title: str, kind: str = "signing"
) -> BenchSession:
    """A session whose field participant publishes over WHIP (its invite) and the officer watches.

    `signing`: the signer's video is forwarded and recorded. `inspection`: the staff's video is also
    decoded and searched for barcodes by the server's analyser, which costs more CPU than forwarding.
    """
    headers = {"Authorization": f"Bearer {officer}"}
    if kind == "inspection":
        request = http.post(f"{base}/api/v1/inspections", json={"title": title}, headers=headers)
        role = "staff"
    elif kind == "signing":
        form = aiohttp.FormData()
        form.add_field("document", _tiny_pdf(), filename="contract.pdf", content_type="application/pdf")
        form.add_field("signer", '{"name": "Bench Signer"}', content_type="application/json")
        form.add_field("title", title)
        request = http.post(f"{base}/api/v1/signings", data=form, headers=headers)
        role = "signer"
    else:
        raise BenchError(f"unknown session kind {kind!r}")
    async with request as r:
        if r.status != 201:
            raise BenchError(f"create {kind}: {r.status} {await r.text()}")
        body = await r.json()
    return BenchSession(body["id"], body["invites"][role]["token"], officer)


REQUIRED_METRICS = (
    "rtc_forward_delay_seconds",
    "rtc_forwarded_frames",
    "rtc_forwarded_bytes",
    "rtc_received_frames",
    "rtc_nacks_sent",
    "rtc_nacks_received",
    "rtc_keyframe_requests",
    "rtc_viewer_plis",
    "rtc_abandoned_frames",
    "rtc_dropped_frames",
    "rtc_keyframe_waits",
    "rtc_fec_packets",
    "rtc_fec_recovered_packets",
    "rtc_sequence_holes_skipped",
    "rtc_transport_feedback_packets",
    "rtc_publisher_remb_capped",
    "rtc_redundant_packets",
    "rtc_redundancy_backoffs",
)


async def scrape(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/metrics") as r:
        if r.status != 200:
            raise BenchError(f"/metrics: {r.status}")
        return await r.text()


def metrics_delta(before: str, after: str) -> dict[str, float | list[str]]:
    """Forwarding delay p50/p95 and counters over a window (difference of two scrapes)."""
    return metrics_delta_many([(before, after)])


def metrics_delta_many(windows: list[tuple[str, str]]) -> dict[str, float | list[str]]:
    """As metrics_delta, over several windows (each a pair of scrapes of one server) added together."""
    missing = sorted({name for _, after in windows for name in REQUIRED_METRICS if name not in after})
    summed: dict[float, float] = {}
    total_s = total_n = 0.0
    counters = dict.fromkeys(REQUIRED_METRICS[1:], 0.0)
    for before, after in windows:
        b0, s0, c0 = parse_histogram(before, "rtc_forward_delay_seconds")
        b1, s1, c1 = parse_histogram(after, "rtc_forward_delay_seconds")
        prior = dict(b0)
        for bound, count in b1:
            summed[bound] = summed.get(bound, 0.0) + count - prior.get(bound, 0.0)
        total_s += s1 - s0
        total_n += c1 - c0
        for name in counters:
            counters[name] += counter(after, name) - counter(before, name)
    window = sorted(summed.items())
    out: dict[str, float | list[str]] = {
        "forward_delay_p50_ms": 1000 * histogram_quantile(window, 0.5),
        "forward_delay_p95_ms": 1000 * histogram_quantile(window, 0.95),
        "forward_delay_mean_ms": 1000 * total_s / total_n if total_n > 0 else float("nan"),
        "missing_metrics": missing,
    }
    out.update(counters)
    return out
