"""Figures from samples and scrapes: percentiles, freezes, Prometheus histogram quantiles, /proc CPU."""

from __future__ import annotations

import math
import os
import time

import pytest

from bench.servers import REQUIRED_METRICS, metrics_delta
from bench.stats import cpu_seconds, histogram_quantile, percentile, rss_mib, summarise


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert percentile([7.0], 99) == 7.0


def test_summary_counts_frames_latency_and_freezes_in_the_window() -> None:
    shown = [10.0 + i / 30 for i in range(30)] + [11.7 + i / 30 for i in range(9)]  # a 700 ms hole
    captured: list[float | None] = [s - 0.050 for s in shown]
    captured[3] = None  # a frame whose code did not read
    s = summarise(shown, captured, 10.0, 12.0)
    assert s.frames == 39 and s.unread == 1
    assert s.fps == pytest.approx(19.5)
    assert s.p50_ms == pytest.approx(50, abs=0.01) and s.max_ms == pytest.approx(50, abs=0.01)
    assert s.freezes == 1 and s.longest_gap_ms == pytest.approx(733, abs=1)


def test_empty_window_is_one_long_freeze() -> None:
    s = summarise([], [], 0.0, 3.0)
    assert s.frames == 0 and s.freezes == 1 and math.isnan(s.p95_ms)


SCRAPE = """# HELP rtc_forward_delay_seconds x
rtc_forward_delay_seconds_bucket{{le="0.001"}} {a}
rtc_forward_delay_seconds_bucket{{le="0.002"}} {b}
rtc_forward_delay_seconds_bucket{{le="+Inf"}} {c}
rtc_forward_delay_seconds_sum {s}
rtc_forward_delay_seconds_count {c}
rtc_forwarded_frames_total {c}
rtc_forwarded_bytes_total 1000.0
rtc_received_frames_total {c}
rtc_nacks_sent_total 0.0
rtc_nacks_received_total 0.0
rtc_keyframe_requests_total 1.0
rtc_viewer_plis_total 0.0
rtc_abandoned_frames_total 0.0
rtc_dropped_frames_total 0.0
rtc_keyframe_waits_total 0.0
rtc_fec_packets_total 0.0
rtc_fec_recovered_packets_total 0.0
rtc_sequence_holes_skipped_total 0.0
rtc_transport_feedback_packets_total 0.0
rtc_publisher_remb_capped_total 0.0
rtc_redundant_packets_total 0.0
rtc_redundancy_backoffs_total 0.0
"""


def test_metrics_delta_takes_quantiles_of_the_window_only() -> None:
    before = SCRAPE.format(a=1000, b=1000, c=1000, s=0.5)
    after = SCRAPE.format(a=1050, b=1100, c=1100, s=0.6)  # of 100 new frames: 50 under 1 ms, 50 in 1-2 ms
    delta = metrics_delta(before, after)
    assert delta["missing_metrics"] == []
    assert delta["forward_delay_p50_ms"] == pytest.approx(1.0)
    assert delta["forward_delay_p95_ms"] == pytest.approx(1.9)
    assert delta["forward_delay_mean_ms"] == pytest.approx(1.0)
    assert delta["rtc_forwarded_frames"] == 100


def test_metrics_delta_names_what_the_server_does_not_export() -> None:
    delta = metrics_delta("", "rtc_forwarded_frames_total 3\n")
    assert "rtc_forward_delay_seconds" in delta["missing_metrics"]  # type: ignore[operator]
    assert len(delta["missing_metrics"]) == len(REQUIRED_METRICS) - 1  # type: ignore[arg-type]


def test_histogram_quantile_beyond_the_last_bound_is_that_bound() -> None:
    assert histogram_quantile([(0.001, 0.0), (float("inf"), 10.0)], 0.5) == 0.001
    assert math.isnan(histogram_quantile([], 0.5))


def test_cpu_and_memory_of_this_process_from_proc() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.15
    assert rss_mib(os.getpid()) > 10


def test_rounds_are_summarised_together() -> None:
    from bench.stats import summarise_windows

    first = ([1.0 + i / 30 for i in range(30)], [1.0 + i / 30 - 0.010 for i in range(30)], 1.0, 2.0)
    second = ([5.0 + i / 30 for i in range(30)], [5.0 + i / 30 - 0.030 for i in range(30)], 5.0, 6.0)
    s = summarise_windows([first, second])  # type: ignore[list-item]
    assert s.frames == 60 and s.fps == pytest.approx(30)
    assert s.p50_ms == pytest.approx(20, abs=0.01) and s.max_ms == pytest.approx(30, abs=0.01)
    assert s.freezes == 0  # the time between rounds is not a freeze


def test_metrics_of_several_servers_add_up() -> None:
    from bench.servers import metrics_delta_many

    window = (SCRAPE.format(a=0, b=0, c=0, s=0.0), SCRAPE.format(a=100, b=100, c=100, s=0.05))
    slow = (SCRAPE.format(a=0, b=0, c=0, s=0.0), SCRAPE.format(a=0, b=0, c=100, s=0.5))
    delta = metrics_delta_many([window, slow])
    assert delta["rtc_forwarded_frames"] == 200
    assert delta["forward_delay_p50_ms"] == pytest.approx(1.0)  # half the frames under 1 ms
    assert delta["forward_delay_p95_ms"] == pytest.approx(2.0)  # beyond the last bound: that bound
    assert delta["forward_delay_mean_ms"] == pytest.approx(2.75)
