"""Tiny versions of every benchmark (a few seconds each) so that none of them can rot.

They check that each run produces figures that mean something (frames read back, metrics found,
namespaces removed), not how fast anything is: speed is measured by `rtc-server bench`, not asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import netlab
from bench.browser import run_browser_loopback
from bench.capacity import run_capacity
from bench.clients import BenchError
from bench.latency import run_loopback
from bench.network import run_profile
from bench.sources import VideoFormat

RTC_SERVER = str(Path(sys.executable).parent / "rtc-server")
SMALL = VideoFormat(320, 240, 30, 300_000)


def our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(netlab.PREFIX + "-")]


@pytest.mark.slow
async def test_loopback_measures_all_three_systems() -> None:
    report = await run_loopback(SMALL, seconds=2.0, warmup=0.5)
    for mode in ("direct", "sfu", "relay"):
        latency = report.results[mode].latency
        assert latency.frames > 10, mode
        assert latency.unread < latency.frames / 2, mode  # the painted clock reads back
        assert 0 < latency.p50_ms < 2000, mode
    sfu = report.results["sfu"]
    assert sfu.server_cpu_pct is not None and sfu.server_cpu_pct > 0
    assert sfu.server_rss_mib is not None and sfu.server_rss_mib > 20
    assert sfu.metrics["missing_metrics"] == []
    assert sfu.metrics["rtc_forwarded_frames"] > 10
    assert not math.isnan(sfu.metrics["forward_delay_p95_ms"])
    assert {"added_p50_ms", "added_p95_ms", "relay_over_sfu_cpu"} <= set(report.derived())


@pytest.mark.slow
async def test_capacity_step_reports_every_viewer() -> None:
    report = await run_capacity((2,), seconds=2.0, settle=0.5, workers=1, log=lambda _: None)
    (step,) = report.steps
    assert step.sessions == 2
    assert step.mean_fps > 10 and step.server_cpu_pct > 0 and step.client_cpu_pct > 0
    assert 0 <= step.p50_ms < 2000  # frames matched to their send time by the hash of their bytes
    assert 700 < report.clip_kbps < 1400


@pytest.mark.slow
@pytest.mark.browser
async def test_chromium_canvas_reaches_chromium_and_aiortc_viewers() -> None:
    result = await run_browser_loopback(seconds=4.0, warmup=3.0)
    for viewer in ("chromium_viewer", "aiortc_viewer"):
        assert result[viewer]["frames"] > 5, viewer
        assert 0 < result[viewer]["p50_ms"] < 2000, viewer
    assert result["publisher"]["kbps"] > 0


@pytest.mark.slow
def test_impaired_network_run_measures_and_cleans_up() -> None:
    row = run_profile("wifi", seconds=3.0, warmup=1.0)
    assert row["frames"] > 10 and 0 < row["p50_ms"] < 2000
    assert row["publisher_kbps"] and row["publisher_kbps"] > 100
    assert our_namespaces() == []


def test_namespaces_are_removed_when_a_run_fails() -> None:
    with pytest.raises(BenchError), netlab.lab("4g"):
        assert set(netlab.NS.values()) <= set(our_namespaces())
        raise BenchError("the run failed")
    assert our_namespaces() == []


def test_cli_refuses_bad_arguments_with_usage_status() -> None:
    for argv in (["network", "--profiles", "5g"], ["capacity", "--steps", "30,10"], ["nonsense"]):
        done = subprocess.run([RTC_SERVER, "bench", *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, argv
        assert "usage: rtc-server bench" in done.stderr


@pytest.mark.slow
def test_cli_runs_a_benchmark_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    argv = [RTC_SERVER, "bench", "--json", str(out), "loopback", "--seconds", "1.5", "--warmup", "0.5"]
    argv += ["--rounds", "1", "--modes", "sfu", "--width", "320", "--height", "240", "--bitrate", "300000"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| sfu |" in done.stdout
    figures = json.loads(out.read_text())
    (row,) = figures["loopback"]
    assert row["mode"] == "sfu" and row["frames"] > 10 and row["missing_metrics"] == []
