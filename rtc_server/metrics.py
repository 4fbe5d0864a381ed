"""Prometheus metrics, one registry per application (no process-wide globals, so tests stay isolated)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rtc_server.media import MediaService

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
        self.recording_bytes = Counter("rtc_recording_bytes", "Bytes written to recordings", registry=r)

    def watch_media(self, media: MediaService) -> None:
        self.registry.register(_MediaCollector(media))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def set_session_counts(self, counts: dict[tuple[str, str], int]) -> None:
        self.sessions.clear()
        for (kind, state), n in counts.items():
            self.sessions.labels(kind=kind, state=state).set(n)


class _MediaCollector(Collector):
    """Reads the media engine's plain counters at scrape time: the forward path never touches Prometheus."""

    def __init__(self, media: MediaService) -> None:
        self.media = media

    def collect(self) -> Iterator[Metric]:
        s = self.media.stats()
        peers = GaugeMetricFamily("rtc_peers", "Open peer connections", labels=["direction"])
        peers.add_metric(["publish"], s.publishers)
        peers.add_metric(["watch"], s.viewers)
        yield peers
        for name, doc, value in (
            ("rtc_received_frames", "Encoded frames received from publishers", s.frames_received),
            ("rtc_received_bytes", "Encoded bytes received from publishers", s.bytes_received),
            ("rtc_forwarded_frames", "Encoded frames forwarded to viewers", s.frames_forwarded),
            ("rtc_forwarded_bytes", "Encoded bytes forwarded to viewers", s.bytes_forwarded),
            ("rtc_dropped_frames", "Frames a slow viewer's full queue discarded", s.frames_dropped),
            (
                "rtc_keyframe_waits",
                "Frames skipped while a viewer waited for a keyframe",
                s.frames_skipped_for_keyframe,
            ),
            ("rtc_keyframe_requests", "Keyframe requests sent to publishers", s.plis_sent),
            ("rtc_viewer_plis", "PLI/FIR received from viewers", s.plis_received),
            ("rtc_nacks_sent", "NACKs sent to publishers", s.nacks_sent),
            ("rtc_nacks_received", "NACKs received from viewers", s.nacks_received),
            ("rtc_dead_peers", "Publishers closed because their RTP stopped", s.peers_closed_dead),
            (
                "rtc_abandoned_frames",
                "Publisher frames given up on (a packet never arrived): the stream resumed on a keyframe",
                s.frames_abandoned,
            ),
            (
                "rtc_publisher_remb_capped",
                "Bitrate estimates sent to a publisher lowered to its weakest viewer's",
                s.remb_capped,
            ),
            (
                "rtc_transport_feedback_packets",
                "Transport-cc feedback packets sent to publishers (their own bandwidth estimation)",
                s.transport_feedbacks,
            ),
            (
                "rtc_redundant_packets",
                "Copies of packets sent to viewers whose receiver reports show loss",
                s.packets_duplicated,
            ),
            (
                "rtc_redundancy_backoffs",
                "Times copies to a viewer stopped because its link was full (it queued, or the loss stayed)",
                s.redundancy_backoffs,
            ),
            ("rtc_red_packets", "Publisher packets received inside RED (FEC negotiated)", s.red_packets),
            ("rtc_fec_packets", "ULPFEC parity packets received from publishers", s.fec_packets),
            (
                "rtc_fec_recovered_packets",
                "Lost publisher packets rebuilt from ULPFEC instead of waiting for a retransmission",
                s.fec_recovered,
            ),
            (
                "rtc_sequence_holes_skipped",
                "Gaps in a publisher's numbering that held no picture (lost parity), stepped over",
                s.holes_skipped,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        delay = HistogramMetricFamily(
            "rtc_forward_delay_seconds", "Server forwarding delay, last packet of a frame in to frame sent"
        )
        buckets = [(str(bound), float(count)) for bound, count in s.forward_delay_buckets]
        buckets.append(("+Inf", float(s.forward_delay_count)))
        delay.add_metric([], buckets=buckets, sum_value=s.forward_delay_sum_s)
        yield delay
