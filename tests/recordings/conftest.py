from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from recordings import ManifestSigner
from tests.recordings.rec_media import Packets, audio_packets, record, video_packets


@pytest.fixture(scope="session")
def vp8_packets() -> Packets:
    return video_packets("vp8", seconds=3.0)


@pytest.fixture(scope="session")
def h264_packets() -> Packets:
    return video_packets("h264", seconds=3.0)


@pytest.fixture(scope="session")
def opus_packets() -> Packets:
    return audio_packets(seconds=3.0, beep_at=1.0)


@pytest.fixture(scope="session")
def server_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def signer(server_key: ed25519.Ed25519PrivateKey) -> ManifestSigner:
    return ManifestSigner(server_key)


@pytest.fixture
def ecdsa_signer() -> ManifestSigner:
    return ManifestSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def recorded_master(
    tmp_path_factory: pytest.TempPathFactory,
    vp8_packets: Packets,
    opus_packets: Packets,
    server_key: ed25519.Ed25519PrivateKey,
) -> Path:
    """One participant, VP8 video + Opus audio, 1 s segments; copied per test by `recording`."""
    root = tmp_path_factory.mktemp("master") / "rec"
    signer = ManifestSigner(server_key)
    record(root / "video", "vp8", vp8_packets, signer)
    record(root / "audio", "opus", opus_packets, signer)
    return root


@pytest.fixture
def recording(recorded_master: Path, tmp_path: Path) -> Path:
    target = tmp_path / "rec"
    shutil.copytree(recorded_master, target)
    return target


@pytest.fixture
def run_ffmpeg_check() -> Callable[[Path], str]:
    import subprocess

    def check(path: Path) -> str:
        done = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stderr + ("" if done.returncode == 0 else f"exit {done.returncode}")

    return check
