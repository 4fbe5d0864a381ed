"""Profile the server's forward path: py-spy samples a real `rtc-server serve` carrying N sessions.

    rtc-server bench profile [--sessions 1] [--seconds 20] [--out var/bench/profile.txt]

Load is the capacity benchmark's (pre-encoded 1 Mbit/s publishers, hash viewers, recording on).
Writes py-spy's collapsed stacks and prints the functions with the most samples, self and inclusive.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp

from .capacity import _Workers
from .clients import BenchError
from .servers import officer_token, rtc_server
from .sources import VideoFormat, encode_clip


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise BenchError("py-spy is not installed (.venv/bin/pip install py-spy)")
    return found


def top_functions(
    collapsed: str, count: int = 25
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """(self, inclusive) sample counts per function from py-spy's collapsed ('raw') output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")" for f in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    return own.most_common(count), inclusive.most_common(count), total


async def run_profile(sessions: int, seconds: float, out: Path, kind: str = "signing") -> str:
    spy = py_spy()
    clip = await asyncio.get_running_loop().run_in_executor(None, encode_clip, VideoFormat(), 150)
    with tempfile.TemporaryDirectory() as tmp, rtc_server(Path(tmp)) as server:
        async with aiohttp.ClientSession() as http:
            officer = await officer_token(http, server.url)
            pool = _Workers(1, server.url, officer, clip, kind)
            try:
                await pool.grow_to(sessions)
                await asyncio.sleep(3)
                argv = [spy, "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
                argv += ["--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"]
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
                )
                _, err = await proc.communicate()
                if proc.returncode != 0:
                    raise BenchError(f"py-spy failed: {err.decode()[-500:]}")
            finally:
                await pool.close()
    own, inclusive, total = top_functions(out.read_text())
    lines = [
        f"py-spy: {total} samples of the server's busy threads, {sessions} {kind} session(s), {seconds:.0f} s"
    ]
    lines.append("self samples:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own]
    lines.append("inclusive samples:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive]
    return "\n".join(lines)
