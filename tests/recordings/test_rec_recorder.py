from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import threading
import tracemalloc
from pathlib import Path
from typing import IO

import pytest

from recordings import (
    FramesDropped,
    ManifestSigner,
    RecorderClosedError,
    RecorderConfig,
    RecorderEvent,
    RecordingClosed,
    RecordingFailed,
    SegmentSealed,
    SegmentWriter,
    StorageFullError,
    TrackInfo,
    TrackRecorder,
    verify_recording,
)
from tests.recordings.rec_media import CLOCK_BASE, VIDEO_RATE, Packets, as_frames, cycle_frames


async def test_recorder_writes_off_loop_and_reports_events(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    events: list[RecorderEvent] = []
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def on_event(event: RecorderEvent) -> None:
        threads.add(threading.get_ident())
        events.append(event)

    recorder = TrackRecorder(
        tmp_path / "cam",
        TrackInfo("cam", "vp8", CLOCK_BASE),
        signer,
        RecorderConfig(segment_duration_s=1.0),
        on_event=on_event,
    )
    for frame in as_frames(vp8_packets, VIDEO_RATE, CLOCK_BASE + 1):
        assert recorder.submit(frame)
    manifest = await recorder.close()
    assert manifest is not None and manifest["signed"]["segment_count"] == 3
    assert [type(e) for e in events] == [SegmentSealed] * 3 + [RecordingClosed]
    assert threads == {loop_thread}  # events are delivered on the loop
    assert recorder.segment_count == 3 and recorder.bytes_written == sum(
        s["size"] for s in manifest["signed"]["segments"]
    )
    assert await recorder.close() is manifest
    with pytest.raises(RecorderClosedError):
        recorder.submit(as_frames(vp8_packets[:1], VIDEO_RATE, CLOCK_BASE)[0])
    assert verify_recording(tmp_path / "cam").exit_code == 0


async def test_full_queue_drops_until_next_keyframe(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    asked: list[bool] = []
    events: list[RecorderEvent] = []
    gate = threading.Event()

    def slow_open(path: Path) -> IO[bytes]:
        gate.wait(10)  # hold the worker so the queue fills
        return path.open("w+b")

    recorder = TrackRecorder(
        tmp_path / "cam",
        TrackInfo("cam", "vp8", CLOCK_BASE),
        signer,
        RecorderConfig(segment_duration_s=1.0, queue_frames=10),
        on_event=events.append,
        keyframe_needed=lambda: asked.append(True),
        open_file=slow_open,
    )
    frames = as_frames(vp8_packets, VIDEO_RATE, CLOCK_BASE + 1)
    accepted = [recorder.submit(f) for f in frames[:30]]
    gate.set()
    for frame in frames[30:]:  # now paced by the consumer, as a live stream would be
        for _ in range(5000):
            if recorder._queue.qsize() <= 5:
                break
            await asyncio.sleep(0.002)
        accepted.append(recorder.submit(frame))
    manifest = await recorder.close()
    assert manifest is not None
    # The worker holds at most two frames when it blocks, ten wait in the queue; after the first
    # drop nothing is taken until the keyframe at frame 30 (the stream stays decodable).
    first_drop = accepted.index(False)
    assert 10 <= first_drop <= 12
    assert not any(accepted[first_drop:30]) and all(accepted[30:])
    assert sum(s["frames"] for s in manifest["signed"]["segments"]) == first_drop + len(frames) - 30
    assert asked == [True]
    assert [e.count for e in events if isinstance(e, FramesDropped)] == [30 - first_drop]
    assert recorder.dropped_frames == 30 - first_drop
    assert verify_recording(tmp_path / "cam").exit_code == 0


class FillingDisk:
    """Files that fail with ENOSPC once `budget` bytes were written across all of them."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __call__(self, path: Path) -> IO[bytes]:
        disk = self
        raw = path.open("w+b")

        class Limited:
            def __getattr__(self, name: str) -> object:
                return getattr(raw, name)

            def write(self, data: bytes) -> int:
                if len(data) > disk.budget:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                disk.budget -= len(data)
                return raw.write(data)

        return Limited()  # type: ignore[return-value]


async def _record_until_full(track_dir: Path, frames: list, signer: ManifestSigner, open_file=None) -> tuple:  # type: ignore[no-untyped-def]
    events: list[RecorderEvent] = []
    kwargs = {"open_file": open_file} if open_file is not None else {}
    recorder = TrackRecorder(
        track_dir,
        TrackInfo("cam", "vp8", CLOCK_BASE),
        signer,
        RecorderConfig(segment_duration_s=0.5, reserve_bytes=32 * 1024),
        on_event=events.append,
        **kwargs,
    )
    for frame in frames:
        if recorder.error is not None:
            break
        recorder.submit(frame)
        await asyncio.sleep(0.001)
    manifest = await recorder.close()
    return recorder, events, manifest


async def test_disk_full_stops_the_track_cleanly(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    frames = list(cycle_frames(vp8_packets, VIDEO_RATE, 3000, 300))
    recorder, events, manifest = await _record_until_full(
        tmp_path / "cam", frames, signer, FillingDisk(60_000)
    )
    failures = [e for e in events if isinstance(e, RecordingFailed)]
    assert len(failures) == 1 and isinstance(failures[0].error, StorageFullError)
    assert isinstance(events[-1], RecordingClosed)
    with pytest.raises(StorageFullError):
        recorder.submit(frames[0])
    assert manifest is not None and manifest["signed"]["end_reason"] == "disk_full"
    assert manifest["signed"]["segment_count"] >= 1
    assert not list((tmp_path / "cam").glob("*.part"))
    assert verify_recording(tmp_path / "cam").exit_code == 0


@pytest.fixture
def tiny_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 320 KiB tmpfs (we run as root); falls back to the injected full disk if not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mount)], capture_output=True, check=False
    )
    yield mount, (None if done.returncode == 0 else FillingDisk(300_000))
    if done.returncode == 0:
        subprocess.run(["umount", str(mount)], check=False)


async def test_disk_full_on_a_real_tiny_filesystem(
    tiny_fs, vp8_packets: Packets, signer: ManifestSigner
) -> None:  # type: ignore[no-untyped-def]
    mount, fallback = tiny_fs
    frames = list(cycle_frames(vp8_packets, VIDEO_RATE, 3000, 1500))
    _, events, manifest = await _record_until_full(mount / "cam", frames, signer, fallback)
    assert any(isinstance(e, RecordingFailed) and isinstance(e.error, StorageFullError) for e in events)
    # The reserve is what lets the manifest be written on a full disk.
    assert manifest is not None and manifest["signed"]["end_reason"] == "disk_full"
    assert json.loads((mount / "cam/manifest.json").read_bytes())["signed"]["segment_count"] >= 3
    assert verify_recording(mount / "cam").exit_code == 0


def test_memory_stays_flat_over_a_long_recording(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    """20 minutes of 30 fps video (36,000 frames, 600 segments) at remux speed."""
    writer = SegmentWriter(
        tmp_path / "cam",
        TrackInfo("cam", "vp8", 1000.0),
        signer,
        RecorderConfig(segment_duration_s=2.0, fsync=False, reserve_bytes=0),
    )
    total = 36_000
    samples: list[int] = []
    rss: list[int] = []
    tracemalloc.start()
    try:
        for i, frame in enumerate(cycle_frames(vp8_packets, VIDEO_RATE, 3000, total)):
            writer.write(frame)
            if i % 6000 == 5999:
                samples.append(tracemalloc.get_traced_memory()[0])
                rss.append(int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    finally:
        tracemalloc.stop()
    manifest = writer.close()
    assert manifest["signed"]["segment_count"] == 600
    growth = samples[-1] - samples[1]
    print(f"traced heap after 6k..36k frames: {[s // 1024 for s in samples]} KiB")
    assert growth < 64 * 1024, samples
    # FFmpeg's own allocations are invisible to tracemalloc: the resident set must stay flat too.
    assert rss[-1] - rss[1] < 4 * 1024 * 1024, rss


async def test_reused_folder_fails_as_an_event_not_a_hang(tmp_path: Path, signer: ManifestSigner) -> None:
    (tmp_path / "cam").mkdir()
    (tmp_path / "cam/manifest.json").write_text("{}")
    events: list[RecorderEvent] = []
    recorder = TrackRecorder(
        tmp_path / "cam", TrackInfo("cam", "vp8", CLOCK_BASE), signer, on_event=events.append
    )
    assert await asyncio.wait_for(recorder.close(), 5) is None
    assert [type(e) for e in events] == [RecordingFailed, RecordingClosed]
    assert "already holds a recording" in str(recorder.error)
