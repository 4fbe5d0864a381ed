"""Publisher, server and viewer in separate network namespaces, joined by a router that impairs links.

    pub ns  10.77.1.2 --veth-- 10.77.1.1 |             | 10.77.3.1 --veth-- 10.77.3.2  view ns
                                         |  router ns  |
                                         | 10.77.2.1 --veth-- 10.77.2.2  srv ns
                                         |   TUN imp0 <-> bench.impair (delay, jitter, loss, rate)

Everything the router receives on a veth is policy-routed into the TUN; the forwarder writes it back
after impairing it and the main table delivers it. Only these namespaces' addresses carry traffic.
`Lab` creates all of it and removes it on exit, whatever happened; leftovers of a killed run (same
names) are removed before a new one starts.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .clients import BenchError

PREFIX = "rtcb"
NS = {"pub": f"{PREFIX}-pub", "srv": f"{PREFIX}-srv", "view": f"{PREFIX}-view", "rtr": f"{PREFIX}-rtr"}
SUBNET = {"pub": "10.77.1", "srv": "10.77.2", "view": "10.77.3"}
TUN = "imp0"
# Jumbo frames on every link so that an HTTP request (a WHIP offer of ~3 KB) travels in one segment.
# Why: rtc-server's WHIP/WHEP handler reads the body with one `content.read(n)`, which returns what
# has arrived so far; on a rate-limited link the offer's second segment comes milliseconds later and
# the offer is refused as truncated (400 "lacks a DTLS fingerprint"). Media packets stay under 1200
# bytes whatever the MTU, so this changes nothing about the media path being measured.
MTU = "9000"
ROOT = str(Path(__file__).resolve().parents[1])


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise BenchError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _in(ns: str, *argv: str) -> None:
    result = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise BenchError(f"{ns}: {' '.join(argv)}: {result.stderr.strip()}")


def host(role: str) -> str:
    return f"{SUBNET[role]}.2"


def teardown() -> None:
    for ns in NS.values():
        _ip("netns", "del", ns, check=False)


def setup() -> None:
    teardown()
    for ns in NS.values():
        _ip("netns", "add", ns)
        _in(ns, "ip", "link", "set", "lo", "up")
    rtr = NS["rtr"]
    _in(rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    _in(rtr, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    _in(rtr, "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0")
    _in(rtr, "ip", "tuntap", "add", "dev", TUN, "mode", "tun")
    _in(rtr, "ip", "link", "set", TUN, "mtu", MTU, "up")
    _in(rtr, "ip", "route", "add", "default", "dev", TUN, "table", "100")
    for role, net in SUBNET.items():
        inner, outer = f"{role}0", f"r{role}"
        _ip("link", "add", inner, "netns", NS[role], "type", "veth", "peer", "name", outer, "netns", rtr)
        _in(NS[role], "ip", "addr", "add", f"{net}.2/24", "dev", inner)
        _in(NS[role], "ip", "link", "set", inner, "mtu", MTU, "up")
        _in(NS[role], "ip", "route", "add", "default", "via", f"{net}.1")
        _in(rtr, "ip", "addr", "add", f"{net}.1/24", "dev", outer)
        _in(rtr, "ip", "link", "set", outer, "mtu", MTU, "up")
        _in(rtr, "sysctl", "-qw", f"net.ipv4.conf.{outer}.rp_filter=0")
        _in(rtr, "ip", "rule", "add", "iif", outer, "lookup", "100")
    _in(rtr, "sysctl", "-qw", f"net.ipv4.conf.{TUN}.rp_filter=0")


@dataclass
class Lab:
    profile: str
    impaired: tuple[str, ...] = ("pub", "view")
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def spawn(
        self, role: str, argv: list[str], stdout: int | None = subprocess.PIPE
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", NS[role], *argv],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH": ROOT, "HOME": "/root"},
        )
        self.procs.append(proc)
        return proc

    def python(self, role: str, module: str, *args: str) -> subprocess.Popen[str]:
        return self.spawn(role, [sys.executable, "-m", module, *args])

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextlib.contextmanager
def lab(profile: str, impaired: tuple[str, ...] = ("pub", "view"), max_seconds: float = 600) -> Iterator[Lab]:
    """Namespaces up, the impairment forwarder running; all of it gone on exit."""
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        raise BenchError("network namespaces need root")
    setup()
    running = Lab(profile, impaired)
    try:
        args = ["--tun", TUN, "--profile", profile, "--max-seconds", str(max_seconds)]
        for role in impaired:
            args += ["--subnet", f"{SUBNET[role]}.0/24"]
        forwarder = running.python("rtr", "bench.impair", *args)
        assert forwarder.stderr is not None
        line = forwarder.stderr.readline()
        if "ready" not in line:
            raise BenchError(f"impairment forwarder did not start: {line}{forwarder.stderr.read()[-500:]}")
        yield running
    finally:
        running.stop_all()
        teardown()
