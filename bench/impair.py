"""A user-space network impairment forwarder (this kernel has no sch_netem): delay, jitter, loss, rate.

Runs in the router namespace of netlab.py. The kernel hands it every forwarded IP packet through a TUN
device (policy routing sends whatever arrives on the veths to the TUN); it holds each packet for its
links' delay, drops some, paces the rest at the link rate, then writes it back to the TUN, where the
main routing table delivers it. `Pipe` is the pure model (one direction of one access link).

    python -m bench.impair --tun imp0 --profile 4g --subnet 10.77.1.0/24 --subnet 10.77.3.0/24
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import os
import random
import signal
import struct
import sys
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


@dataclass(frozen=True)
class Profile:
    """One access link; rtt_ms is split evenly between its two directions."""

    name: str
    rtt_ms: float
    jitter_ms: float
    loss: float
    rate_kbps: float
    queue_ms: float = 300.0

    @property
    def one_way_s(self) -> float:
        return self.rtt_ms / 2000


PROFILES = {
    "wifi": Profile("wifi", rtt_ms=20, jitter_ms=3, loss=0.001, rate_kbps=30_000),
    "4g": Profile("4g", rtt_ms=80, jitter_ms=20, loss=0.01, rate_kbps=4_000),
    "3g": Profile("3g", rtt_ms=300, jitter_ms=0, loss=0.03, rate_kbps=1_000, queue_ms=500),
    # Poor 3G that the video alone nearly fills: copies to the viewer overflow it (a congestion test).
    "3g-narrow": Profile("3g-narrow", rtt_ms=300, jitter_ms=0, loss=0.03, rate_kbps=400, queue_ms=500),
}


class Pipe:
    """One direction of a link: random loss, then a rate-limited FIFO with a bounded queue, then delay.

    Jitter is uniform in +-jitter, drawn afresh every JITTER_SLOT_S rather than per packet, and
    packets leave in order: on a cellular link delay varies with scheduling over tens of milliseconds
    and does not reorder. (Independent per-packet draws kept in order would raise the mean delay by
    most of the jitter, since each packet waits for the slowest before it.)
    """

    JITTER_SLOT_S = 0.02

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.profile = profile
        self.rng = rng
        self.busy_until = 0.0
        self.last_release = 0.0
        self.dropped_loss = 0
        self.dropped_queue = 0
        self.passed = 0
        self._jitter = 0.0
        self._jitter_until = -1.0

    def schedule(self, now: float, size: int) -> float | None:
        """Release time of a packet of `size` bytes entering at `now`, or None if it is dropped."""
        p = self.profile
        if self.rng.random() < p.loss:
            self.dropped_loss += 1
            return None
        start = max(now, self.busy_until)
        if start - now > p.queue_ms / 1000:
            self.dropped_queue += 1
            return None
        self.busy_until = start + size * 8 / (p.rate_kbps * 1000)
        if p.jitter_ms and now >= self._jitter_until:
            self._jitter = self.rng.uniform(-p.jitter_ms, p.jitter_ms) / 1000
            self._jitter_until = now + self.JITTER_SLOT_S
        jitter = self._jitter
        release = max(self.busy_until + p.one_way_s + jitter, now, self.last_release + 1e-6)
        self.last_release = release
        self.passed += 1
        return release


class Impairer:
    """Packets from an impaired subnet go through its up pipe; packets to one, through its down pipe."""

    def __init__(self, profile: Profile, subnets: list[str], seed: int = 1) -> None:
        rng = random.Random(seed)
        self.nets = [ipaddress.ip_network(s) for s in subnets]
        self.up = [Pipe(profile, rng) for _ in self.nets]
        self.down = [Pipe(profile, rng) for _ in self.nets]

    def _index(self, address: bytes) -> int | None:
        ip = ipaddress.IPv4Address(address)
        for i, net in enumerate(self.nets):
            if ip in net:
                return i
        return None

    def schedule(self, now: float, packet: bytes) -> float | None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return now
        t: float | None = now
        src, dst = self._index(packet[12:16]), self._index(packet[16:20])
        if src is not None:
            t = self.up[src].schedule(now, len(packet))
        if t is not None and dst is not None:
            t = self.down[dst].schedule(t, len(packet))
        return t

    def counts(self) -> dict[str, int]:
        pipes = self.up + self.down
        return {
            "passed": sum(p.passed for p in pipes),
            "lost": sum(p.dropped_loss for p in pipes),
            "queue_drops": sum(p.dropped_queue for p in pipes),
        }


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


async def forward(fd: int, impairer: Impairer, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()

    def write(packet: bytes) -> None:
        try:
            os.write(fd, packet)
        except OSError:
            pass  # the kernel refused it (a full queue): a drop like any other

    def readable() -> None:
        while True:
            try:
                packet = os.read(fd, 65535)
            except BlockingIOError:
                return
            release = impairer.schedule(loop.time(), packet)
            if release is not None:
                loop.call_at(release, write, packet)

    loop.add_reader(fd, readable)
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    print("impair ready at tun", file=sys.stderr, flush=True)
    try:
        await asyncio.sleep(max_seconds)
    except asyncio.CancelledError:
        pass
    finally:
        loop.remove_reader(fd)
        print(f"impair counts {impairer.counts()}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tun", default="imp0")
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--subnet", action="append", default=[], help="an impaired access network")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop by itself after this")
    args = parser.parse_args()
    fd = open_tun(args.tun)
    try:
        asyncio.run(forward(fd, Impairer(PROFILES[args.profile], args.subnet), args.max_seconds))
    except KeyboardInterrupt:
        pass
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
