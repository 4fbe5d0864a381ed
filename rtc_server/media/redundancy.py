"""When a viewer gets each video packet twice: on a link that loses packets at random (radio), not on
one that loses them because it is full (congestion).

A lost packet on a viewer's link costs that viewer a round trip (NACK, retransmission) during which
its decoder holds every later frame: on a 300 ms mobile link that is the tail of glass-to-glass
latency. A copy of each packet, sent 10 ms after it, arrives in its place unless both are lost. The
price is double the video on that link, which helps a lossy link and hurts a full one.

The viewer's receiver reports are the only signal, and they carry two:

- Loss. A browser sends a report with every NACK, so each report's own loss fraction covers a few
  packets (0%, 25%, 80%, ...): the controller works on the cumulative counters instead, over windows
  of at least WINDOW_S and MIN_WINDOW_PACKETS. Random loss at rate p leaves about p*p once copies
  are on; a queue that overflows drops the copy with the original, so the loss stays.
- Queueing delay: the round trip the report's LSR/DLSR give, above the least one seen lately. A
  full link shows it long before it drops anything (bench/'s poor 3G at 400 kbit/s: a 300 ms round
  trip grew to 700 ms with copies on, and the viewer froze for seconds; with them off it did not).

The controller

- turns copies on when the smoothed loss reaches `threshold` (below MAX_LOSS, the latest window
  included: above that the link is failing, not lossy) and the link is not queueing;
- turns them off and backs off (doubling, up to BACKOFF_MAX_S) when the link queues more than
  QUEUE_LIMIT_S with copies on, or when the loss left with them is still at `threshold`: either
  way the copies are load the link cannot carry;
- every PROBE_INTERVAL_S turns them off for PROBE_WINDOWS windows to measure the link again, since
  with copies on the reports no longer show its own loss, and keeps them off if it has healed.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

# Loss at which a link is failing rather than lossy: copies would only add to it.
MAX_LOSS = 0.2
# Loss is measured over windows of at least this long and this many packets the viewer expected.
WINDOW_S = 1.0
MIN_WINDOW_PACKETS = 50
# Weight of a new window in the smoothed loss.
SMOOTHING = 0.3
# With copies on, how often to stop them to measure the link's own loss again, and for how many
# windows. A probe costs those windows' worth of retransmissions.
PROBE_INTERVAL_S = 20.0
PROBE_WINDOWS = 3
# After copies met a full link (it queued, or the loss stayed with them), how long to wait before
# trying again: doubled at each backoff until copies hold a whole probe interval.
BACKOFF_S = 10.0
BACKOFF_MAX_S = 160.0
# Queueing delay (the median of the last RECENT_RTT_SAMPLES round trips over the least seen in the
# last BASE_RTT_HORIZON_S) above which the link is full. In bench/ copies on a lossy 3G link that
# had room kept it within 40 ms (a keyframe's burst briefly 150 ms); on one that had none, 400 ms.
QUEUE_LIMIT_S = 0.1
RECENT_RTT_SAMPLES = 5
BASE_RTT_HORIZON_S = 60.0


class State(Enum):
    OFF = "off"
    ON = "on"
    PROBING = "probing"
    BACKED_OFF = "backed-off"


class RedundancyControl:
    """Decides, from one viewer's receiver reports about one stream, whether to send it copies."""

    def __init__(self, threshold: float, clock: Callable[[], float] = time.monotonic):
        if not 0 < threshold < MAX_LOSS:
            raise ValueError(f"threshold must be a loss fraction in (0, {MAX_LOSS})")
        self.threshold = threshold
        self._clock = clock
        self.state = State.OFF
        # Smoothed loss the viewer reports: the link's own while off, what copies leave while on.
        self.loss = 0.0
        self.backoffs = 0
        self._since = 0.0
        self._backoff_s = BACKOFF_S
        self._probe: list[float] = []
        # (time, cumulative packets lost, extended highest sequence number) at the window's start.
        self._window: tuple[float, int, int] | None = None
        # Round trips: (time, seconds) kept ascending for the sliding minimum, and the latest few.
        self._rtt_floor: deque[tuple[float, float]] = deque()
        self._rtt_recent: deque[float] = deque(maxlen=RECENT_RTT_SAMPLES)

    @property
    def active(self) -> bool:
        return self.state is State.ON

    @property
    def queue_delay(self) -> float | None:
        """Seconds the viewer's link queues now beyond its least round trip lately; None: unknown."""
        if not self._rtt_floor or len(self._rtt_recent) < RECENT_RTT_SAMPLES:
            return None
        return statistics.median(self._rtt_recent) - self._rtt_floor[0][1]

    def _queueing(self) -> bool:
        delay = self.queue_delay
        return delay is not None and delay > QUEUE_LIMIT_S

    def _note_rtt(self, rtt_s: float, now: float) -> None:
        floor = self._rtt_floor
        while floor and floor[-1][1] >= rtt_s:
            floor.pop()
        floor.append((now, rtt_s))
        while floor[0][0] < now - BASE_RTT_HORIZON_S:
            floor.popleft()
        self._rtt_recent.append(rtt_s)

    def report(self, packets_lost: int, highest_sequence: int, rtt_s: float | None = None) -> None:
        """One receiver report: cumulative packets lost, extended highest sequence number, and the
        round trip its LSR/DLSR give (None when it echoes no sender report of ours)."""
        now = self._clock()
        if rtt_s is not None and rtt_s > 0:
            self._note_rtt(rtt_s, now)
            if self.state is State.ON and self._queueing():
                self._back_off(now)  # at once: a queue grows by the copies' rate every moment
        if self._window is None:
            self._window = (now, packets_lost, highest_sequence)
            return
        start, lost_before, highest_before = self._window
        expected = highest_sequence - highest_before
        if expected < 0 or expected > 1 << 20:
            self._window = (now, packets_lost, highest_sequence)  # the stream restarted
            return
        if now - start < WINDOW_S or expected < MIN_WINDOW_PACKETS:
            return
        self._window = (now, packets_lost, highest_sequence)
        # Where late or retransmitted packets count as received, a window's loss can be negative.
        self._measured(min(1.0, max(0.0, (packets_lost - lost_before) / expected)), now)

    def _measured(self, fraction_lost: float, now: float) -> None:
        if self.state is State.PROBING:
            self._probe.append(fraction_lost)
            if len(self._probe) >= PROBE_WINDOWS:
                measured = sum(self._probe) / len(self._probe)
                # The threshold itself, not less: on a link just under it (4G's 1%), a lower bar
                # kept copies on for good at every other probe.
                if self.threshold <= measured < MAX_LOSS and not self._queueing():
                    self._turn_on(now)
                else:
                    self.state = State.OFF
                    self.loss = measured
            return
        self.loss = (1 - SMOOTHING) * self.loss + SMOOTHING * fraction_lost
        if self.state is State.ON:
            if self.loss >= self.threshold:
                # Both copies lost as often as one was: the link is full, not lossy.
                self._back_off(now)
            elif now - self._since >= PROBE_INTERVAL_S:
                # Copies held a whole interval without failing: a later backoff starts short again.
                self._backoff_s = BACKOFF_S
                self.state = State.PROBING
                self._probe = []
            return
        if self.state is State.BACKED_OFF:
            if now - self._since < self._backoff_s:
                return
            self._backoff_s = min(2 * self._backoff_s, BACKOFF_MAX_S)
            self.state = State.OFF
        if self.threshold <= self.loss < MAX_LOSS and fraction_lost < MAX_LOSS and not self._queueing():
            self._turn_on(now)

    def _back_off(self, now: float) -> None:
        self.state = State.BACKED_OFF
        self.backoffs += 1
        self._since = now
        self.loss = 0.0

    def _turn_on(self, now: float) -> None:
        self.state = State.ON
        self._since = now
        self.loss = 0.0
