from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from recordings import ManifestSigner, RecorderConfig, TrackInfo, TrackRecorder
from tests.recordings.rec_media import (
    AUDIO_RATE,
    CLOCK_BASE,
    VIDEO_RATE,
    as_frames,
    audio_packets,
    video_packets,
)

FLASH_AT = 1.5  # seconds after capture start, in both tracks


def _first_media_time(track_dir: Path, manifest: dict, hit) -> float:  # type: ignore[no-untyped-def]
    """Media time (s, participant clock) of the first decoded sample/frame where `hit` is true."""
    for segment in manifest["signed"]["segments"]:
        with av.open(str(track_dir / segment["file"])) as container:
            for frame in container.decode(container.streams[0]):
                offset = hit(frame)
                if offset is not None:
                    return segment["media_start_us"] / 1e6 + float(frame.time) + offset
    raise AssertionError("event not found in the recording")


def _white(frame: av.VideoFrame) -> float | None:
    luma = frame.to_ndarray(format="gray")
    return 0.0 if luma.mean() > 200 else None


def _loud(frame: av.AudioFrame) -> float | None:
    samples = np.abs(frame.to_ndarray().astype(np.float32)).max(axis=0)
    above = np.nonzero(samples > 0.1 * (32767 if samples.max() > 2 else 1))[0]
    return above[0] / frame.sample_rate if len(above) else None


async def test_flash_and_beep_line_up_across_tracks(tmp_path: Path, signer: ManifestSigner) -> None:
    """A frame turns white and a beep starts at the same capture instant; the two recorded
    tracks (separate files, separate segmenting) must put them at the same media time."""
    video = video_packets("vp8", seconds=3.0, flash_frame=round(FLASH_AT * 30))
    audio = audio_packets(seconds=3.0, beep_at=FLASH_AT)
    capture_start = CLOCK_BASE + 1.0
    config = RecorderConfig(segment_duration_s=1.0)
    recorders = {
        "video": TrackRecorder(tmp_path / "video", TrackInfo("video", "vp8", CLOCK_BASE), signer, config),
        "audio": TrackRecorder(tmp_path / "audio", TrackInfo("audio", "opus", CLOCK_BASE), signer, config),
    }
    # Interleave the tracks by capture time, as a live publisher would deliver them.
    stream = [("video", f) for f in as_frames(video, VIDEO_RATE, capture_start)]
    stream += [("audio", f) for f in as_frames(audio, AUDIO_RATE, capture_start)]
    for name, frame in sorted(stream, key=lambda item: item[1].wallclock):
        recorders[name].submit(frame)
    manifests = {name: await r.close() for name, r in recorders.items()}
    flash = _first_media_time(tmp_path / "video", manifests["video"], _white)
    beep = _first_media_time(tmp_path / "audio", manifests["audio"], _loud)
    offset_ms = (beep - flash) * 1000
    print(f"flash at {flash:.4f} s, beep at {beep:.4f} s, A/V offset {offset_ms:+.1f} ms")
    assert abs(flash - (1.0 + FLASH_AT)) < 0.034  # one video frame
    assert abs(offset_ms) < 5
