"""The copies-to-a-lossy-viewer controller: on for random loss, off for a full link, probing to heal."""

from __future__ import annotations

import pytest

from rtc_server.config import ConfigError, load_config
from rtc_server.media import MediaSettings
from rtc_server.media.redundancy import (
    BACKOFF_MAX_S,
    BACKOFF_S,
    BASE_RTT_HORIZON_S,
    MAX_LOSS,
    MIN_WINDOW_PACKETS,
    PROBE_INTERVAL_S,
    PROBE_WINDOWS,
    QUEUE_LIMIT_S,
    RECENT_RTT_SAMPLES,
    RedundancyControl,
    State,
)


class Clock:
    """The test's time, and the viewer's cumulative receiver-report counters."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lost = 0
        self.highest = 70_000  # extended: past one wrap of the 16-bit sequence
        self.rtt: float | None = None  # the round trip each report gives, if any

    def __call__(self) -> float:
        return self.now


def reports(control: RedundancyControl, clock: Clock, fraction: float, count: int) -> None:
    """`count` seconds of a viewer receiving 100 packets a second and losing `fraction` of them."""
    for _ in range(count):
        clock.now += 1.0
        clock.highest += 100
        clock.lost += round(fraction * 100)
        control.report(clock.lost, clock.highest, clock.rtt)


def until(control: RedundancyControl, clock: Clock, fraction: float, state: State, limit: int = 400) -> int:
    """Reports of `fraction`, a second apart, until the control is in `state`: how many it took."""
    for count in range(1, limit + 1):
        reports(control, clock, fraction, 1)
        if control.state is state:
            return count
    raise AssertionError(f"still {control.state} after {limit} reports of {fraction}")


def new_control(clock: Clock) -> RedundancyControl:
    control = RedundancyControl(0.02, clock)
    control.report(clock.lost, clock.highest)  # the first report starts the first window
    return control


def turned_on(clock: Clock) -> RedundancyControl:
    control = new_control(clock)
    until(control, clock, 0.03, State.ON)
    return control


def test_a_clean_or_barely_lossy_link_gets_no_copies() -> None:
    clock = Clock()
    control = new_control(clock)
    reports(control, clock, 0.0, 10)
    reports(control, clock, 0.01, 30)  # a good 4G link's 1%
    assert control.state is State.OFF
    assert control.loss == pytest.approx(0.01, abs=1e-3)


def test_random_loss_turns_copies_on_and_they_stay_while_they_work() -> None:
    clock = Clock()
    control = new_control(clock)
    assert 3 <= until(control, clock, 0.03, State.ON) <= 5, "3% turns copies on within a few reports"
    # With copies on, the reports show what is left: about p*p, mostly nothing.
    reports(control, clock, 0.0, int(PROBE_INTERVAL_S) - 3)
    reports(control, clock, 0.004, 1)
    assert control.active
    assert control.backoffs == 0


def test_a_probe_re_measures_the_link_and_keeps_copies_while_it_is_still_lossy() -> None:
    clock = Clock()
    control = turned_on(clock)
    # Copies hide the link's own loss: every interval they stop, to measure it.
    assert until(control, clock, 0.0, State.PROBING) == PROBE_INTERVAL_S
    reports(control, clock, 0.03, PROBE_WINDOWS)
    assert control.active
    # The next probe finds a healed link (the viewer walked out of the dead spot).
    assert until(control, clock, 0.0, State.PROBING) == PROBE_INTERVAL_S
    reports(control, clock, 0.0, PROBE_WINDOWS)
    assert control.state is State.OFF
    reports(control, clock, 0.0, 30)
    assert control.state is State.OFF
    # A link just under the threshold (4G's 1%) does not keep copies on at the probe.
    assert until(control, clock, 0.03, State.ON) <= 5
    until(control, clock, 0.0, State.PROBING)
    reports(control, clock, 0.01, PROBE_WINDOWS)
    assert control.state is State.OFF


def test_loss_that_copies_do_not_lower_is_congestion_and_backs_off() -> None:
    clock = Clock()
    control = turned_on(clock)
    # A full queue drops the copy with the original: the loss stays at 5% with copies on.
    assert until(control, clock, 0.05, State.BACKED_OFF) <= 3
    assert control.backoffs == 1
    assert until(control, clock, 0.05, State.ON) == BACKOFF_S, "no copies until the backoff ends"
    # Congestion again soon: the next backoff is twice as long.
    until(control, clock, 0.05, State.BACKED_OFF)
    assert control.backoffs == 2
    assert until(control, clock, 0.05, State.ON) == 2 * BACKOFF_S
    # Copies that hold a whole interval were helping: the backoff starts short again.
    until(control, clock, 0.0, State.PROBING)
    reports(control, clock, 0.05, PROBE_WINDOWS)
    assert control.active
    until(control, clock, 0.05, State.BACKED_OFF)
    assert until(control, clock, 0.05, State.ON) == BACKOFF_S


def test_backoff_doubles_up_to_a_ceiling() -> None:
    clock = Clock()
    control = turned_on(clock)
    waits = []
    for _ in range(8):
        until(control, clock, 0.05, State.BACKED_OFF)
        waits.append(until(control, clock, 0.05, State.ON))
    assert waits[:5] == [BACKOFF_S * 2**n for n in range(5)]
    assert waits[5:] == [BACKOFF_MAX_S] * 3


def test_a_failing_link_never_gets_copies() -> None:
    clock = Clock()
    control = new_control(clock)
    reports(control, clock, 0.5, 1)
    assert control.state is State.OFF, "a report of 50% loss is a failing link, not a lossy one"
    reports(control, clock, 0.5, 20)
    assert control.state is State.OFF
    # It recovers to merely lossy: copies once the smoothed loss is back in the band.
    assert until(control, clock, 0.05, State.ON) <= 6


def test_loss_is_measured_over_windows_not_per_report() -> None:
    """A browser reports with every NACK: a few packets each, their own fraction 0% or 50%."""
    clock = Clock()
    control = new_control(clock)
    for second in range(6):
        for report in range(10):  # ten reports a second, 10 packets each
            clock.now += 0.1
            clock.highest += 10
            clock.lost += 5 if (second, report) == (0, 3) else 0  # one burst of 5: 5% of a window
            control.report(clock.lost, clock.highest)
        if second == 0:
            assert control.loss == pytest.approx(0.3 * 0.05), "one window of a second: 5% lost"
    assert control.state is State.OFF, "one lossy second in six is not a lossy link"
    # Too few packets for a window: it stretches until there are enough.
    loss = control.loss
    for lost in (2, 0, 0, 0):
        clock.now += 1.0
        clock.highest += MIN_WINDOW_PACKETS // 5
        clock.lost += lost
        control.report(clock.lost, clock.highest)
    assert control.loss == loss
    clock.now += 1.0
    clock.highest += MIN_WINDOW_PACKETS // 5
    control.report(clock.lost, clock.highest)
    assert control.loss == pytest.approx(0.7 * loss + 0.3 * 2 / MIN_WINDOW_PACKETS)


def test_retransmissions_counted_as_received_and_restarts_do_not_read_as_loss() -> None:
    clock = Clock()
    control = new_control(clock)
    reports(control, clock, 0.0, 2)
    clock.now += 1.0
    clock.highest += 100
    clock.lost -= 7  # late packets: the cumulative loss falls
    control.report(clock.lost, clock.highest)
    assert control.loss == 0.0
    clock.now += 1.0
    clock.highest -= 50_000  # the numbering started again: a new window, not a window of loss
    control.report(clock.lost + 900, clock.highest)
    clock.lost += 900
    assert control.loss == 0.0
    reports(control, clock, 0.0, 3)
    assert control.loss == 0.0


def rtts(control: RedundancyControl, clock: Clock, *seconds: float) -> None:
    """Reports a tenth of a second apart (as with NACKs) that give these round trips, no loss."""
    for rtt in seconds:
        clock.now += 0.1
        clock.highest += 10
        control.report(clock.lost, clock.highest, rtt)


def test_a_link_that_queues_with_copies_on_is_full_and_they_stop_at_once() -> None:
    clock = Clock()
    clock.rtt = 0.3
    control = turned_on(clock)
    rtts(control, clock, *[0.3] * RECENT_RTT_SAMPLES)
    assert control.queue_delay == pytest.approx(0.0)
    # A keyframe's burst delays a report or two: the median of the last few shrugs it off.
    rtts(control, clock, 0.3, 0.45, 0.48, 0.3, 0.31, 0.3)
    assert control.active
    # The queue grows with the copies' rate: within a few reports, long before a window closes.
    rtts(control, clock, 0.35, 0.38, 0.42)
    assert control.active
    rtts(control, clock, 0.46, 0.5)
    assert control.state is State.BACKED_OFF and control.backoffs == 1
    assert control.queue_delay is not None and control.queue_delay > QUEUE_LIMIT_S


def test_a_link_already_queueing_gets_no_copies_however_lossy() -> None:
    clock = Clock()
    clock.rtt = 0.3
    control = new_control(clock)
    reports(control, clock, 0.0, 2)
    clock.rtt = 0.75  # the video alone fills it
    reports(control, clock, 0.05, 20)
    assert control.state is State.OFF and control.loss > 0.04
    clock.rtt = 0.32  # it drained (the publisher slowed down to fit)
    assert until(control, clock, 0.05, State.ON) == RECENT_RTT_SAMPLES // 2 + 1
    # Nor does a probe put copies back on a link that queues.
    until(control, clock, 0.0, State.PROBING)
    clock.rtt = 0.7
    reports(control, clock, 0.05, PROBE_WINDOWS)
    assert control.state is State.OFF


def test_the_least_round_trip_is_forgotten_after_a_while() -> None:
    """A phone that moved to a longer route is not taken for a queueing one for ever."""
    clock = Clock()
    clock.rtt = 0.1
    control = new_control(clock)
    reports(control, clock, 0.0, 5)
    clock.rtt = 0.4
    reports(control, clock, 0.0, 10)
    assert control.queue_delay == pytest.approx(0.3)
    reports(control, clock, 0.0, int(BASE_RTT_HORIZON_S))
    assert control.queue_delay == pytest.approx(0.0)
    assert until(control, clock, 0.05, State.ON) <= 3
    # Reports that echo no sender report of ours leave the delay guard as it was.
    clock.rtt = None
    reports(control, clock, 0.0, 3)
    assert control.active and control.queue_delay == pytest.approx(0.0)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 0.2, 1.5])
def test_threshold_must_be_a_loss_fraction_below_failing(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        RedundancyControl(threshold)
    with pytest.raises(ValueError, match="viewer_redundancy_loss"):
        MediaSettings(viewer_redundancy_loss=threshold)


def test_the_configured_threshold_has_the_same_bound() -> None:
    assert load_config(env={}).media.viewer_redundancy_loss == 0.02, "on by default"
    assert load_config(env={"RTC_MEDIA__VIEWER_REDUNDANCY_LOSS": "0.19"}).media.viewer_redundancy_loss == 0.19
    with pytest.raises(ConfigError):
        load_config(env={"RTC_MEDIA__VIEWER_REDUNDANCY_LOSS": str(MAX_LOSS)})
