"""The analysis package stands alone: no aiohttp, no aiortc, not even the media engine."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_analyser_pulls_in_no_web_or_webrtc_stack() -> None:
    code = (
        "import sys, rtc_server.analysis\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiortc')"
        " or m.startswith('rtc_server.media')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
