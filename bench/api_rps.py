"""Requests per second for GET /api/v1/sessions/{id} against a real `rtc-server serve` process.

Usage: .venv/bin/python bench/api_rps.py [--seconds 5] [--concurrency 32] [--runs 3]
Prints each run and the median. The load client runs in this process (one core), the server in its own.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

BIN = str(Path(sys.executable).parent / "rtc-server")
PASSWORD = "benchmark passphrase"


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    subprocess.run(
        [BIN, "users", "add", "bench", "--role", "officer", "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [BIN, "serve", "--data-dir", str(data), "--no-tls", "--host", "127.0.0.1", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={"RTC_LOG__LEVEL": "warning", "PATH": "/usr/bin:/bin"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"ready at (\S+)", line)
        if match:
            # Keep draining so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, match.group(1)
    raise RuntimeError("server did not start")


async def run(url: str, seconds: float, concurrency: int, runs: int) -> list[float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as http:
        token = (
            await (await http.post("/api/v1/login", json={"username": "bench", "password": PASSWORD})).json()
        )["token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = await (
            await http.post(
                "/api/v1/inspections",
                headers=headers,
                json={"title": "bench", "items": [{"sku": f"SKU-{i}"} for i in range(20)]},
            )
        ).json()
        path = f"/api/v1/sessions/{created['id']}"
        results = []
        for _ in range(runs):
            done = 0
            errors = 0
            deadline = time.perf_counter() + seconds

            async def worker(deadline: float) -> None:
                nonlocal done, errors
                while time.perf_counter() < deadline:
                    async with http.get(path, headers=headers) as resp:
                        await resp.read()
                        if resp.status == 200:
                            done += 1
                        else:
                            errors += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker(deadline) for _ in range(concurrency)))
            rps = done / (time.perf_counter() - start)
            print(f"run: {rps:.0f} req/s ({done} ok, {errors} errors, concurrency {concurrency})")
            results.append(rps)
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp))
        try:
            results = asyncio.run(run(url, args.seconds, args.concurrency, args.runs))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(
        f"GET /api/v1/sessions/{{id}}: median {statistics.median(results):.0f} req/s over {len(results)} runs"
    )


if __name__ == "__main__":
    main()
