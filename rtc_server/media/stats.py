"""Counters of the forward path, kept as plain integers and exported as a snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

# Upper bounds (seconds) of the forwarding-delay histogram, Prometheus style (cumulative on export).
DELAY_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class DelayHistogram:
    """Fixed-bucket histogram: one comparison loop and two additions per observation."""

    __slots__ = ("count", "counts", "max", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DELAY_BUCKETS_S) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, value: float) -> None:
        i = 0
        for bound in DELAY_BUCKETS_S:
            if value <= bound:
                break
            i += 1
        self.counts[i] += 1
        self.count += 1
        self.sum += value
        if value > self.max:
            self.max = value

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile q (inf if beyond the last bucket)."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return DELAY_BUCKETS_S[i] if i < len(DELAY_BUCKETS_S) else float("inf")
        return float("inf")


class MediaCounters:
    """Mutable counters, incremented in place on the forward path (attribute access, no locks)."""

    def __init__(self) -> None:
        self.frames_received = 0
        self.bytes_received = 0
        self.frames_forwarded = 0
        self.bytes_forwarded = 0
        self.frames_dropped = 0
        self.frames_skipped_for_keyframe = 0
        self.frames_codec_mismatch = 0
        self.frames_abandoned = 0
        self.keyframes_requested = 0
        self.plis_sent = 0
        self.plis_received = 0
        self.nacks_sent = 0
        self.nacks_received = 0
        self.remb_capped = 0
        self.tap_frames_dropped = 0
        self.peers_closed_dead = 0
        # ULPFEC from browser publishers: parity packets received, media packets rebuilt from them.
        self.red_packets = 0
        self.packets_duplicated = 0
        # Times a viewer's copies stopped because its link was full (queueing, or loss that stayed).
        self.redundancy_backoffs = 0
        self.transport_feedbacks = 0
        self.fec_packets = 0
        self.fec_recovered = 0
        # Gaps in a publisher's sequence numbers that VP8 picture IDs showed to hold no picture.
        self.holes_skipped = 0
        # Packets put on the wire from the receive path (plain UDP) vs through aiortc's async sender.
        self.packets_sent_direct = 0
        self.packets_sent_queued = 0
        self.forward_delay = DelayHistogram()

    def snapshot(self, publishers: int, viewers: int) -> MediaStats:
        h = self.forward_delay
        return MediaStats(
            publishers=publishers,
            viewers=viewers,
            frames_received=self.frames_received,
            bytes_received=self.bytes_received,
            frames_forwarded=self.frames_forwarded,
            bytes_forwarded=self.bytes_forwarded,
            frames_dropped=self.frames_dropped,
            frames_skipped_for_keyframe=self.frames_skipped_for_keyframe,
            frames_codec_mismatch=self.frames_codec_mismatch,
            frames_abandoned=self.frames_abandoned,
            keyframes_requested=self.keyframes_requested,
            plis_sent=self.plis_sent,
            plis_received=self.plis_received,
            nacks_sent=self.nacks_sent,
            nacks_received=self.nacks_received,
            remb_capped=self.remb_capped,
            tap_frames_dropped=self.tap_frames_dropped,
            peers_closed_dead=self.peers_closed_dead,
            red_packets=self.red_packets,
            packets_duplicated=self.packets_duplicated,
            redundancy_backoffs=self.redundancy_backoffs,
            transport_feedbacks=self.transport_feedbacks,
            fec_packets=self.fec_packets,
            fec_recovered=self.fec_recovered,
            holes_skipped=self.holes_skipped,
            forward_delay_buckets=tuple(zip(DELAY_BUCKETS_S, _cumulative(h.counts), strict=False)),
            forward_delay_count=h.count,
            forward_delay_sum_s=h.sum,
            forward_delay_max_s=h.max,
        )


def _cumulative(counts: list[int]) -> list[int]:
    out, total = [], 0
    for n in counts:
        total += n
        out.append(total)
    return out


@dataclass(frozen=True, slots=True)
class MediaStats:
    """A consistent copy of the counters for /metrics.

    frames_dropped counts frames a slow viewer's full queue discarded; frames_skipped_for_keyframe the
    frames a viewer could not decode while waiting for a keyframe (joining, after a drop or a switch).
    forward_delay_* measure, per forwarded frame, from the arrival of its last packet at the
    publisher's receiver to the moment the viewer's sender finished sending it.
    forward_delay_buckets holds (upper bound in seconds, cumulative count); +Inf is forward_delay_count.
    """

    publishers: int
    viewers: int
    frames_received: int
    bytes_received: int
    frames_forwarded: int
    bytes_forwarded: int
    frames_dropped: int
    frames_skipped_for_keyframe: int
    frames_codec_mismatch: int
    frames_abandoned: int
    keyframes_requested: int
    plis_sent: int
    plis_received: int
    nacks_sent: int
    nacks_received: int
    remb_capped: int
    tap_frames_dropped: int
    peers_closed_dead: int
    red_packets: int = 0
    packets_duplicated: int = 0
    redundancy_backoffs: int = 0
    transport_feedbacks: int = 0
    fec_packets: int = 0
    fec_recovered: int = 0
    holes_skipped: int = 0
    forward_delay_buckets: tuple[tuple[float, int], ...] = field(default=())
    forward_delay_count: int = 0
    forward_delay_sum_s: float = 0.0
    forward_delay_max_s: float = 0.0
