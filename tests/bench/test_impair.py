"""The user-space impairment model: loss rate, pacing at the link rate, delay with jitter, order kept."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from bench.impair import PROFILES, Impairer, Pipe, Profile


def test_loss_matches_the_profile() -> None:
    pipe = Pipe(Profile("t", rtt_ms=0, jitter_ms=0, loss=0.03, rate_kbps=1e9), random.Random(7))
    released = [pipe.schedule(i * 0.001, 100) for i in range(20_000)]
    lost = sum(r is None for r in released) / len(released)
    assert 0.025 < lost < 0.035


def test_rate_paces_packets_and_a_full_queue_drops() -> None:
    # 1 Mbit/s: a 1250-byte packet takes 10 ms; 100 packets at once queue up to the 300 ms limit.
    pipe = Pipe(Profile("t", rtt_ms=0, jitter_ms=0, loss=0, rate_kbps=1000, queue_ms=300), random.Random(1))
    released = [pipe.schedule(0.0, 1250) for _ in range(100)]
    kept = [r for r in released if r is not None]
    assert kept[:3] == pytest.approx([0.01, 0.02, 0.03])
    assert 29 <= len(kept) <= 32
    assert pipe.dropped_queue == 100 - len(kept)


def test_delay_and_jitter_keep_packets_in_order() -> None:
    profile = Profile("t", rtt_ms=80, jitter_ms=20, loss=0, rate_kbps=1e9)
    pipe = Pipe(profile, random.Random(2))
    released = [pipe.schedule(i * 0.002, 100) for i in range(2000)]
    assert all(r is not None for r in released)
    delays = [r - i * 0.002 for i, r in enumerate(released) if r is not None]
    assert min(delays) >= 0.020 - 1e-9
    assert 0.038 < sum(delays) / len(delays) < 0.050
    assert max(delays) <= 0.060 + 0.002
    assert released == sorted(released)  # type: ignore[type-var]


def ipv4(src: str, dst: str) -> bytes:
    addresses = socket.inet_aton(src), socket.inet_aton(dst)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, *addresses)
    return header + bytes(8)


def test_impairer_applies_up_and_down_links_only_to_impaired_subnets() -> None:
    four_g = PROFILES["4g"]
    lossless = Profile("x", four_g.rtt_ms, 0, 0, four_g.rate_kbps)
    impairer = Impairer(lossless, ["10.77.1.0/24", "10.77.3.0/24"])
    one_way = lossless.one_way_s
    pub_to_srv = impairer.schedule(0.0, ipv4("10.77.1.2", "10.77.2.2"))
    srv_to_view = impairer.schedule(0.0, ipv4("10.77.2.2", "10.77.3.2"))
    pub_to_view = impairer.schedule(0.0, ipv4("10.77.1.2", "10.77.3.2"))
    other = impairer.schedule(0.0, ipv4("10.77.2.2", "10.77.2.3"))
    assert pub_to_srv == pytest.approx(one_way, abs=0.001)
    assert srv_to_view == pytest.approx(one_way, abs=0.001)
    assert pub_to_view == pytest.approx(2 * one_way, abs=0.002)
    assert other == 0.0
    assert impairer.schedule(1.0, b"\x60" + bytes(40)) == 1.0  # IPv6 or garbage passes untouched


def test_profiles_are_the_issue_s() -> None:
    g4 = PROFILES["4g"]
    assert (g4.rtt_ms, g4.jitter_ms, g4.loss, g4.rate_kbps) == (80, 20, 0.01, 4000)
    assert (PROFILES["3g"].rtt_ms, PROFILES["3g"].loss, PROFILES["3g"].rate_kbps) == (300, 0.03, 1000)
