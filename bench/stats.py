"""Figures from per-frame samples and process counters: percentiles, frame rate, freezes, CPU."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

FREEZE_S = 0.5


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class LatencySummary:
    frames: int
    fps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    freezes: int
    longest_gap_ms: float
    unread: int

    def row(self) -> dict[str, float | int]:
        return {
            "frames": self.frames,
            "fps": round(self.fps, 1),
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
            "p99_ms": round(self.p99_ms, 1),
            "max_ms": round(self.max_ms, 1),
            "freezes": self.freezes,
            "longest_gap_ms": round(self.longest_gap_ms),
            "unread": self.unread,
        }


Window = tuple[list[float], list[float | None], float, float]


def summarise(shown: list[float], captured: list[float | None], start: float, end: float) -> LatencySummary:
    """Frames shown in [start, end) (wall clock): latency is shown - captured for frames that carry it.

    A freeze is a gap over FREEZE_S between consecutive frames, counting the window's edges.
    """
    return summarise_windows([(shown, captured, start, end)])


def summarise_windows(windows: list[Window]) -> LatencySummary:
    """One summary over several measurement windows (rounds of an interleaved run)."""
    delays: list[float] = []
    gaps: list[float] = []
    frames = unread = 0
    duration = 0.0
    for shown, captured, start, end in windows:
        inside = [(s, c) for s, c in zip(shown, captured, strict=True) if start <= s < end]
        delays += [1000 * (s - c) for s, c in inside if c is not None]
        times = [start, *sorted(s for s, _ in inside), end]
        gaps += [b - a for a, b in itertools.pairwise(times)]
        frames += len(inside)
        unread += sum(1 for _, c in inside if c is None)
        duration += end - start
    nan = float("nan")
    return LatencySummary(
        frames=frames,
        fps=frames / duration if duration > 0 else nan,
        p50_ms=percentile(delays, 50) if delays else nan,
        p95_ms=percentile(delays, 95) if delays else nan,
        p99_ms=percentile(delays, 99) if delays else nan,
        max_ms=max(delays) if delays else nan,
        freezes=sum(1 for g in gaps if g > FREEZE_S),
        longest_gap_ms=1000 * max(gaps) if gaps else nan,
        unread=unread,
    )


_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (a server may run worker processes)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def rss_mib(pid: int) -> float:
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def parse_histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float, float]:
    """Cumulative buckets, sum and count of an unlabelled Prometheus histogram in exposition text."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(f"{name}_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count = float(line.rsplit(" ", 1)[1])
    return buckets, total, count


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the rank."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def counter(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def udp_receive_drops() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (all sockets of this
    network namespace): bursts a busy event loop did not read in time."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])
