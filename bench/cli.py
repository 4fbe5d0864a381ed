"""`rtc-server bench ...` (or `python -m bench`): run the benchmarks and print their figures.

    rtc-server bench loopback [--seconds 20]       direct floor, rtc-server, MediaRelay relay
    rtc-server bench capacity [--steps 10,20,30]   concurrent sessions at >= 29 fps
    rtc-server bench network  [--profiles wifi,4g,3g] [--browser]   impaired links (root: netns)
    rtc-server bench browser  [--seconds 20]       Chromium canvas -> server -> Chromium viewer
    rtc-server bench profile  [--sessions 10]      py-spy of the server's forward path
    rtc-server bench all      [--smoke]            everything, a few seconds each with --smoke

Every command prints Markdown table rows and, with --json FILE, writes the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .clients import SDP_RETRIES, BenchError
from .impair import PROFILES
from .sources import VideoFormat

EXIT_FAILED = 1
EXIT_USAGE = 2


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def cmd_loopback(args: argparse.Namespace) -> dict[str, Any]:
    from .latency import run_loopback

    fmt = VideoFormat(args.width, args.height, 30, args.bitrate)
    modes = tuple(args.modes.split(","))
    report = await run_loopback(fmt, args.seconds, args.warmup, modes, args.kind, args.rounds)
    rows = [r.row() for r in report.results.values()]
    derived = report.derived()
    print(
        f"\nLoopback, {fmt.width}x{fmt.height} VP8 at 30 fps, {args.seconds:.0f} s per system, {args.kind}:"
    )
    print(
        table(
            rows,
            [
                "mode",
                "rounds",
                "frames",
                "fps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
                "freezes",
                "publisher_kbps",
                "server_cpu_pct",
                "server_rss_mib",
                "forward_delay_p50_ms",
                "forward_delay_p95_ms",
            ],
        )
    )
    for key, value in derived.items():
        print(f"{key}: {value:.2f}")
    for r in rows:
        if r.get("missing_metrics"):
            print(f"MISSING METRICS: {r['missing_metrics']}")
    return {"loopback": rows, "derived": derived}


async def cmd_capacity(args: argparse.Namespace) -> dict[str, Any]:
    from .capacity import run_capacity

    steps = tuple(int(s) for s in args.steps.split(","))
    report = await run_capacity(steps, args.seconds, args.settle, workers=args.workers, kind=args.kind)
    rows = [s.row() for s in report.steps]
    print(f"\nCapacity (clip {report.clip_kbps:.0f} kbit/s 640x480, recording on):")
    print(
        table(
            rows,
            [
                "sessions",
                "min_fps",
                "mean_fps",
                "p50_ms",
                "p95_ms",
                "max_ms",
                "freezes",
                "server_cpu_pct",
                "client_cpu_pct",
                "server_rss_mib",
                "forward_delay_p95_ms",
                "udp_rcvbuf_drops",
                "ok",
            ],
        )
    )
    print(f"capacity: {report.capacity} sessions with every viewer at >= 29 fps")
    return {"capacity": rows, "sessions": report.capacity}


async def cmd_network(args: argparse.Namespace) -> dict[str, Any]:
    from .network import run_profile

    rows = []
    for profile in args.profiles.split(","):
        try:
            row = await asyncio.get_running_loop().run_in_executor(
                None,
                run_profile,
                profile,
                args.seconds,
                args.warmup,
                tuple(args.impaired.split(",")),
                args.browser,
                args.kind,
            )
        except BenchError as exc:
            row = {"profile": profile, "error": str(exc)[:300]}
        print(f"network {profile}: {row}", flush=True)
        rows.append(row)
    print("\nImpaired networks (profile on the " + args.impaired + " access links):")
    print(
        table(
            rows,
            [
                "profile",
                "clients",
                "frames",
                "fps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
                "freezes",
                "longest_gap_ms",
                "publisher_kbps",
            ],
        )
    )
    return {"network": rows}


async def cmd_browser(args: argparse.Namespace) -> dict[str, Any]:
    from .browser import run_browser_loopback

    result = await run_browser_loopback(args.seconds, args.warmup, args.kind)
    print(f"\nChromium canvas -> rtc-server (loopback); publisher sent {result['publisher']}")
    rows = [
        {"viewer": "chromium", **result["chromium_viewer"]},
        {"viewer": "aiortc", **result["aiortc_viewer"]},
    ]
    print(table(rows, ["viewer", "frames", "fps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "freezes"]))
    return {"browser": result}


async def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from .profile import run_profile

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = await run_profile(args.sessions, args.seconds, out, args.kind)
    print(text)
    return {"profile": text, "collapsed_stacks": str(out)}


async def cmd_all(args: argparse.Namespace) -> dict[str, Any]:
    smoke = args.smoke
    out: dict[str, Any] = {}
    common = {"json": None, "kind": args.kind}
    out.update(
        await cmd_loopback(
            argparse.Namespace(
                seconds=3 if smoke else args.seconds,
                warmup=1 if smoke else 3,
                rounds=1 if smoke else 3,
                modes="direct,sfu,relay",
                width=640,
                height=480,
                bitrate=1_000_000,
                **common,
            )
        )
    )
    out.update(
        await cmd_capacity(
            argparse.Namespace(
                steps="2" if smoke else "10,20,30,40,50,60",
                seconds=3 if smoke else 10,
                settle=1 if smoke else 3,
                workers=2,
                **common,
            )
        )
    )
    out.update(
        await cmd_browser(
            argparse.Namespace(seconds=3 if smoke else 20, warmup=2 if smoke else 15, kind=args.kind)
        )
    )
    out.update(
        await cmd_network(
            argparse.Namespace(
                profiles="wifi" if smoke else "wifi,4g,3g",
                seconds=3 if smoke else 60,
                warmup=2 if smoke else 10,
                impaired="pub,view",
                browser=False,
                kind=args.kind,
            )
        )
    )
    return out


def profile_list(text: str) -> str:
    unknown = [p for p in text.split(",") if p not in PROFILES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown profile {unknown[0]!r} (known: {', '.join(PROFILES)})")
    return text


def step_list(text: str) -> str:
    try:
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps are session counts like 10,20,30, not {text!r}") from None
    if not steps or min(steps) < 1 or steps != sorted(steps):
        raise argparse.ArgumentTypeError("steps must be positive and increasing")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtc-server bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", help="also write the raw figures to this file")
    sub = parser.add_subparsers(dest="bench", required=True)
    # signing: the field participant's video is forwarded and recorded; inspection: the server also
    # decodes it a few times a second to read barcodes (the analyser), which costs more than forwarding.
    kind = argparse.ArgumentParser(add_help=False)
    kind.add_argument("--kind", choices=["signing", "inspection"], default="signing", help="session kind")

    loop = sub.add_parser(
        "loopback", parents=[kind], help="glass-to-glass and server CPU: direct, rtc-server, relay"
    )
    loop.add_argument("--seconds", type=float, default=20.0)
    loop.add_argument("--warmup", type=float, default=3.0)
    loop.add_argument("--modes", default="direct,sfu,relay")
    loop.add_argument("--rounds", type=int, default=3, help="interleaved windows per system")
    loop.add_argument("--width", type=int, default=640)
    loop.add_argument("--height", type=int, default=480)
    loop.add_argument("--bitrate", type=int, default=1_000_000)
    loop.set_defaults(run=cmd_loopback)

    cap = sub.add_parser("capacity", parents=[kind], help="concurrent sessions at >= 29 fps each")
    cap.add_argument("--steps", type=step_list, default="10,20,30,40,50,60")
    cap.add_argument("--seconds", type=float, default=10.0)
    cap.add_argument("--settle", type=float, default=3.0)
    cap.add_argument("--workers", type=int, default=2, help="load-generator processes")
    cap.set_defaults(run=cmd_capacity)

    net = sub.add_parser("network", parents=[kind], help="impaired links in network namespaces (root)")
    net.add_argument("--profiles", type=profile_list, default="wifi,4g,3g", help=f"of {', '.join(PROFILES)}")
    net.add_argument("--seconds", type=float, default=60.0)
    net.add_argument("--warmup", type=float, default=10.0)
    net.add_argument("--impaired", default="pub,view", help="access links the profile applies to")
    net.add_argument("--browser", action="store_true", help="Chromium publishes and watches")
    net.set_defaults(run=cmd_network)

    br = sub.add_parser(
        "browser", parents=[kind], help="Chromium canvas publisher, Chromium and aiortc viewers"
    )
    br.add_argument("--seconds", type=float, default=20.0)
    br.add_argument("--warmup", type=float, default=15.0, help="Chromium ramps its bitrate up slowly")
    br.set_defaults(run=cmd_browser)

    prof = sub.add_parser(
        "profile", parents=[kind], help="py-spy profile of the server forwarding N sessions"
    )
    prof.add_argument("--sessions", type=int, default=1)
    prof.add_argument("--seconds", type=float, default=20.0)
    prof.add_argument("--out", default="var/bench/server-profile.txt", help="py-spy collapsed stacks")
    prof.set_defaults(run=cmd_profile)

    everything = sub.add_parser("all", parents=[kind], help="every benchmark in turn")
    everything.add_argument("--smoke", action="store_true", help="a few seconds each (checks, not figures)")
    everything.add_argument("--seconds", type=float, default=20.0)
    everything.set_defaults(run=cmd_all)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.time()
    print(f"load average before: {_load()}", flush=True)
    try:
        result = asyncio.run(args.run(args))
    except BenchError as exc:
        print(f"rtc-server bench: {exc}", file=sys.stderr)
        return EXIT_FAILED
    result["load_average_after"] = _load()
    result["sdp_retries"] = SDP_RETRIES["count"]
    result["seconds"] = round(time.time() - started)
    if SDP_RETRIES["count"]:
        print(f"WHIP/WHEP offers refused as truncated and re-sent: {SDP_RETRIES['count']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0
