"""Prometheus metrics, one registry per application (no process-wide globals, so tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_FORWARD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "rtc_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "rtc_http_request_duration_seconds",
            "HTTP request handling time",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sessions = Gauge("rtc_sessions", "Sessions by kind and state", ["kind", "state"], registry=r)
        self.logins = Counter("rtc_logins", "Login attempts", ["outcome"], registry=r)
        self.peers = Gauge("rtc_peers", "Open peer connections", ["direction"], registry=r)
        self.forwarded_frames = Counter(
            "rtc_forwarded_frames", "Encoded frames forwarded to viewers", ["kind"], registry=r
        )
        self.forwarded_bytes = Counter(
            "rtc_forwarded_bytes", "Encoded bytes forwarded to viewers", ["kind"], registry=r
        )
        self.forward_delay = Histogram(
            "rtc_forward_delay_seconds",
            "Server forwarding delay, packet in to out",
            ["kind"],
            buckets=_FORWARD_BUCKETS,
            registry=r,
        )
        self.recording_bytes = Counter("rtc_recording_bytes", "Bytes written to recordings", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def set_session_counts(self, counts: dict[tuple[str, str], int]) -> None:
        self.sessions.clear()
        for (kind, state), n in counts.items():
            self.sessions.labels(kind=kind, state=state).set(n)
