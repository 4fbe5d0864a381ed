"""Forwarding delay with the inspection analyser on and off, measured in one run.

One staff publisher (640x480 VP8 at 30 fps showing codes, over WHIP) and one officer viewer (WHEP)
per phase, in the real app on loopback; phases alternate analyser off / on, `--seconds` each. The
delay is the media engine's own forward_delay (last packet of a frame in -> the viewer's sender done
with it); each observation is also kept raw here for exact percentiles. The analyser is switched
off by detaching the conference's observer before the publish.

    .venv/bin/python -m tests.inspection.measure_forwarding [--seconds 10] [--rounds 2] [--size 640x480]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from rtc_server.api.app import create_app
from rtc_server.appkeys import SERVICES
from rtc_server.media.stats import DelayHistogram
from rtc_server.models import Role
from tests.inspection.media import codes_clip, staff_publisher
from tests.media.media_clients import answer, viewer_client
from tests.support import PASSWORD, make_config

SDP = {"Content-Type": "application/sdp"}


class RecordingHistogram(DelayHistogram):
    """The engine's histogram, keeping every observation too (exact percentiles)."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []

    def observe(self, value: float) -> None:
        self.samples.append(value)
        super().observe(value)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def phase(
    client: TestClient, app: Any, token: str, analyser: bool, seconds: float, clip: Any
) -> dict[str, Any]:
    services = app[SERVICES]
    auth = {"Authorization": f"Bearer {token}"}
    resp = await client.post(
        "/api/v1/inspections", json={"title": "measure", "items": [{"sku": "4006381333931"}]}, headers=auth
    )
    created = await resp.json()
    sid, staff = created["id"], created["invites"]["staff"]
    services.conference.observer = services.inspection if analyser else None
    pc, _video, offer = await staff_publisher(clip)
    resp = await client.post(
        f"/api/v1/sessions/{sid}/whip",
        data=offer,
        headers={**SDP, "Authorization": f"Bearer {staff['token']}"},
    )
    assert resp.status == 201, await resp.text()
    await answer(pc, await resp.text())
    viewer, voffer = await viewer_client(("video",))
    resp = await client.post(f"/api/v1/sessions/{sid}/whep", data=voffer, headers={**SDP, **auth})
    assert resp.status == 201, await resp.text()
    await answer(viewer.pc, await resp.text())
    await viewer.wait_frames("video", 30, within=20)
    await asyncio.sleep(1.0)  # past the start-up keyframes
    counters = services.media.counters
    recording = RecordingHistogram()
    counters.forward_delay = recording
    received = len(viewer.frames["video"])
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    samples = list(recording.samples)
    counters.forward_delay = DelayHistogram()
    frames = len(viewer.frames["video"]) - received
    stream = services.inspection._streams.get((sid, staff["participant_id"]))
    stats = stream.analyser.stats() if stream is not None and stream.analyser is not None else None
    await viewer.close()
    await pc.close()
    await client.post(f"/api/v1/sessions/{sid}/end", headers=auth)
    services.conference.observer = services.inspection
    return {
        "analyser": analyser,
        "frames": frames,
        "samples": samples,
        "cpu_pct": 100 * cpu / wall,
        "decoded": stats.frames_decoded if stats else 0,
        "analysed": stats.frames_analysed if stats else 0,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    clip, _ = await asyncio.to_thread(codes_clip, width, height)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_config(Path(tmp) / "data"))
        async with TestClient(TestServer(app)) as client:
            await app[SERVICES].accounts.add_user("officer", PASSWORD, Role.OFFICER)
            resp = await client.post("/api/v1/login", json={"username": "officer", "password": PASSWORD})
            token = (await resp.json())["token"]
            results = []
            for _ in range(args.rounds):
                for analyser in (False, True):
                    results.append(await phase(client, app, token, analyser, args.seconds, clip))
    print(f"{args.size} VP8 30 fps, 1 publisher + 1 viewer, {args.seconds:g} s per phase (loopback)")
    columns = ("frames", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms", "cpu %", "decoded", "analysed")
    print(f"{'analyser':<9}" + "".join(f"{c:>9}" for c in columns))
    for r in results:
        s = r["samples"]
        print(
            f"{'on' if r['analyser'] else 'off':<9}{len(s):>9}{pct(s, 0.5):>9.2f}{pct(s, 0.95):>9.2f}"
            f"{pct(s, 0.99):>9.2f}{max(s) * 1000:>9.2f}{statistics.mean(s) * 1000:>9.2f}{r['cpu_pct']:>9.1f}"
            f"{r['decoded']:>9}{r['analysed']:>9}"
        )
    for flag in (False, True):
        pooled = [v for r in results if r["analyser"] is flag for v in r["samples"]]
        print(
            f"pooled analyser {'on ' if flag else 'off'}: n={len(pooled)} p50 {pct(pooled, 0.5):.2f} ms, "
            f"p95 {pct(pooled, 0.95):.2f} ms, p99 {pct(pooled, 0.99):.2f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
