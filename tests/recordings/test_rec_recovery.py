from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from recordings import ManifestSigner, NotARecordingError, RecorderConfig, SegmentWriter, TrackInfo, recover
from recordings import verify_recording as verify
from tests.recordings.rec_media import CLOCK_BASE, VIDEO_RATE, Packets, as_frames


def _abandoned_writer(
    track_dir: Path, packets: Packets, signer: ManifestSigner, frames: int
) -> SegmentWriter:
    """Write `frames` frames and vanish without sealing: what a SIGKILL leaves behind."""
    writer = SegmentWriter(
        track_dir,
        TrackInfo("cam", "vp8", CLOCK_BASE),
        signer,
        RecorderConfig(segment_duration_s=1.0, cluster_time_limit_ms=200, reserve_bytes=4096),
    )
    for frame in as_frames(packets[:frames], VIDEO_RATE, CLOCK_BASE + 1):
        writer.write(frame)
    writer.abort()
    return writer


def test_recover_salvages_the_segment_being_written(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner, run_ffmpeg_check: Callable[[Path], str]
) -> None:
    track = tmp_path / "rec" / "cam"
    _abandoned_writer(
        track, vp8_packets, signer, 50
    )  # segment 0 sealed, segment 1 two-thirds done (20 frames)
    assert verify(tmp_path / "rec").exit_code == 1  # unsealed: missing manifest
    report = recover(track, signer)
    assert report.sealed == 1
    assert len(report.recovered) == 1 and not report.dropped
    salvaged = report.recovered[0]
    assert salvaged.index == 1 and salvaged.recovered
    # Clusters close every 200 ms; what was still in memory at the "kill" is lost.
    assert 3 <= salvaged.frames < 20
    assert abs(salvaged.media_start_us - 2_000_000) < 40_000
    assert run_ffmpeg_check(track / salvaged.file) == ""
    assert not list(track.glob("*.part")) and not (track / ".reserve").exists()
    result = verify(tmp_path / "rec")
    assert result.exit_code == 0, result.message
    manifest = json.loads((track / "manifest.json").read_bytes())["signed"]
    assert manifest["end_reason"] == "recovered"
    assert [s["recovered"] for s in manifest["segments"]] == [False, True]
    assert recover(track, signer).already_sealed


def test_unrecoverable_partial_is_dropped_and_declared(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    track = tmp_path / "cam"
    _abandoned_writer(track, vp8_packets, signer, 50)
    part = next(track.glob("*.part"))
    part.write_bytes(os.urandom(3000))
    report = recover(track, signer)
    assert not report.recovered
    assert [d.file for d in report.dropped] == ["seg_000001.webm.dropped"]
    result = verify(track)
    assert result.exit_code == 0
    assert result.tracks[0].dropped == ["seg_000001.webm.dropped"]
    assert result.tracks[0].segments == 1


def test_torn_journal_line_is_ignored(tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner) -> None:
    track = tmp_path / "cam"
    _abandoned_writer(track, vp8_packets, signer, 50)
    with (track / "journal.jsonl").open("ab") as journal:
        journal.write(b'{"type":"segment","entry":{"index":1,"fi')
    assert recover(track, signer).sealed == 1
    assert verify(track).exit_code == 0


def test_recover_refuses_a_folder_without_journal(tmp_path: Path, signer: ManifestSigner) -> None:
    with pytest.raises(NotARecordingError):
        recover(tmp_path, signer)


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from tests.recordings.rec_media import video_packets
    from recordings import EncodedFrame, ManifestSigner, RecorderConfig, SegmentWriter, TrackInfo
    packets = video_packets("vp8", seconds=3.0)
    writer = SegmentWriter({track!r}, TrackInfo("cam", "vp8", 1000.0),
                           ManifestSigner(ed25519.Ed25519PrivateKey.generate()),
                           RecorderConfig(segment_duration_s=1.0, cluster_time_limit_ms=200))
    print("ready", flush=True)
    for i in range(100000):
        data, _, key = packets[i % len(packets)]
        writer.write(EncodedFrame(data, i * 3000, key, 1001.0 + i / 30))
        time.sleep(0.004)
    """
)


@pytest.mark.slow
def test_sigkill_mid_segment_then_recover(
    tmp_path: Path, signer: ManifestSigner, run_ffmpeg_check: Callable[[Path], str]
) -> None:
    track = tmp_path / "cam"
    script = CHILD.format(root=str(Path(__file__).parents[2]), track=str(track))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        # Kill once two segments are sealed and the third has some clusters on disk.
        while time.monotonic() < deadline:
            journal = track / "journal.jsonl"
            sealed = journal.read_text().count('"type":"segment"') if journal.exists() else 0
            parts = list(track.glob("*.part"))
            if sealed >= 2 and parts and parts[0].stat().st_size > 4000:
                break
            time.sleep(0.01)
        else:
            pytest.fail("child never reached mid-segment")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    report = recover(track, signer)
    assert report.sealed >= 2
    assert len(report.recovered) + len(report.dropped) == 1
    assert report.recovered, "a partial segment with flushed clusters must be salvaged"
    assert run_ffmpeg_check(track / report.recovered[0].file) == ""
    result = verify(track)
    assert result.exit_code == 0, result.message
