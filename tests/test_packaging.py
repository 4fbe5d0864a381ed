"""What an installed server ships: a wheel built from this tree serves its pages and loads its
default configuration without the source checkout beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

PROBE = """
import json, pathlib, sys
import rtc_server
from rtc_server.api.web_routes import STATIC_ROOT, WEB_ROOT
from rtc_server.config import DEFAULT_CONFIG_PATH, load_config

config = load_config(env={})
print(json.dumps({
    "package": rtc_server.__file__,
    "config": str(DEFAULT_CONFIG_PATH),
    "pages": sorted(p.name for p in WEB_ROOT.glob("*.html")),
    "static": sorted(str(p.relative_to(STATIC_ROOT)) for p in STATIC_ROOT.rglob("*") if p.is_file()),
    "port": config.server.port,
}))
"""


def test_an_installed_wheel_has_its_pages_and_its_default_configuration(tmp_path: Path) -> None:
    dist, site, src = tmp_path / "dist", tmp_path / "site", tmp_path / "src"
    # Build from the tracked files only: an egg-info left by the editable install lists every file
    # and would hide what pyproject.toml leaves out.
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    # No build isolation: offline, with the setuptools and wheel of this environment.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("rtc_server-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    # Run from elsewhere with the installed copy first on the path, ahead of this checkout.
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert Path(found["package"]).is_relative_to(site), found["package"]
    assert Path(found["config"]).is_relative_to(site)
    assert found["pages"] == sorted(p.name for p in (ROOT / "rtc_server" / "web").glob("*.html"))
    shipped = sorted(
        str(p.relative_to(ROOT / "rtc_server" / "web" / "static"))
        for p in (ROOT / "rtc_server" / "web" / "static").rglob("*")
        if p.is_file()
    )
    assert found["static"] == shipped, "every static file ships"
    assert found["port"] > 0
