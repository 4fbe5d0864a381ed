from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from recordings import (
    EncodedFrame,
    ManifestSigner,
    RecorderConfig,
    RecordingError,
    SegmentWriter,
    TrackInfo,
    UnsupportedCodecError,
    verify_recording,
)
from recordings.bitstream import h264_nal_units
from tests.recordings.rec_media import CLOCK_BASE, VIDEO_RATE, Packets, as_frames, record, video_packets


def _probe(path: Path) -> dict:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-show_packets",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("codec", "fixture", "ext"),
    [
        ("vp8", "vp8_packets", ".webm"),
        ("h264", "h264_packets", ".mkv"),
        ("opus", "opus_packets", ".webm"),
    ],
)
def test_segments_play_and_start_on_keyframes(
    codec: str,
    fixture: str,
    ext: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    signer: ManifestSigner,
    run_ffmpeg_check: Callable[[Path], str],
) -> None:
    packets: Packets = request.getfixturevalue(fixture)
    writer = record(tmp_path / codec, codec, packets, signer, segment_s=1.0)
    entries = writer.segments
    # libopus's 312-sample priming makes the audio 3.02 s long: a 4th, short segment.
    assert len(entries) == (4 if codec == "opus" else 3), [e.file for e in entries]
    assert writer.dropped_frames == 0
    assert sum(e.frames for e in entries) == len(packets)
    for previous, entry in itertools.pairwise(entries):
        # One clock across segments: each starts where the previous one ended.
        assert abs(entry.media_start_us - previous.media_end_us) <= 1000
    for entry in entries:
        path = tmp_path / codec / entry.file
        assert path.suffix == ext
        assert run_ffmpeg_check(path) == ""
        info = _probe(path)
        stream = info["streams"][0]
        assert stream["codec_name"] == codec
        assert info["packets"][0]["flags"].startswith("K")
        assert len(info["packets"]) == entry.frames
        assert info["format"]["tags"]["RTC_MEDIA_START_US"] == str(entry.media_start_us)
        if codec != "opus":
            assert (stream["width"], stream["height"]) == (320, 240)
            assert abs(float(info["format"]["duration"]) - 1.0) < 0.05
    # media times sit on the participant's clock: the first frame arrived 1 s after its base
    assert abs(entries[0].media_start_us - 1_000_000) < 10_000
    assert verify_recording(tmp_path / codec).exit_code == 0


def test_audio_segments_play_every_sample_they_hold(
    opus_packets: Packets, tmp_path: Path, signer: ManifestSigner
) -> None:
    """A segment starts mid-stream: a player must not discard an encoder's pre-skip from it. With
    libopus's OpusHead it did: 6.5 ms of sound lost at the start of every segment."""
    writer = record(tmp_path / "opus", "opus", opus_packets, signer, segment_s=1.0)
    assert len(writer.segments) >= 3
    for entry in writer.segments:
        with av.open(str(tmp_path / "opus" / entry.file)) as container:
            stream = container.streams.audio[0]
            head = bytes(stream.codec_context.extradata or b"")
            assert head[:8] == b"OpusHead" and head[10:12] == b"\x00\x00", head.hex()
            frames = list(container.decode(stream))
        assert frames[0].pts == 0
        assert sum(f.samples for f in frames) == entry.frames * 960, entry.file


def test_payload_is_remuxed_not_reencoded(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    writer = record(tmp_path / "v", "vp8", vp8_packets, signer)
    stored: list[bytes] = []
    for entry in writer.segments:
        with av.open(str(tmp_path / "v" / entry.file)) as container:
            stored += [bytes(p) for p in container.demux(video=0) if p.size]
    assert stored == [p[0] for p in vp8_packets]


def test_h264_idr_without_parameter_sets_gets_cached_ones(
    tmp_path: Path,
    h264_packets: Packets,
    signer: ManifestSigner,
    run_ffmpeg_check: Callable[[Path], str],
) -> None:
    # Keep SPS/PPS only on the very first IDR, as some senders do.
    stripped = [h264_packets[0]]
    for data, pts, key in h264_packets[1:]:
        units = [u for u in h264_nal_units(data) if u[0] & 0x1F not in (7, 8)]
        stripped.append((b"".join(b"\x00\x00\x00\x01" + u for u in units), pts, key))
    writer = record(tmp_path / "h", "h264", stripped, signer)
    assert len(writer.segments) == 3
    for entry in writer.segments:
        assert run_ffmpeg_check(tmp_path / "h" / entry.file) == ""


def test_frames_before_first_keyframe_are_dropped(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    late = vp8_packets[5:]  # starts on interframes; the next keyframe is frame 30
    writer = record(tmp_path / "v", "vp8", late, signer)
    assert writer.dropped_frames == 25
    assert writer.segments[0].frames > 0
    with av.open(str(tmp_path / "v" / writer.segments[0].file)) as container:
        assert next(container.demux(video=0)).is_keyframe


def test_resolution_change_starts_new_segment(
    tmp_path: Path, signer: ManifestSigner, run_ffmpeg_check: Callable[[Path], str]
) -> None:
    small = video_packets("vp8", seconds=0.5, size=(320, 240))
    big = [(d, pts + 45_000, k) for d, pts, k in video_packets("vp8", seconds=0.5, size=(640, 360))]
    writer = record(tmp_path / "v", "vp8", small + big, signer, segment_s=10)
    assert len(writer.segments) == 2
    sizes = []
    for entry in writer.segments:
        path = tmp_path / "v" / entry.file
        assert run_ffmpeg_check(path) == ""
        stream = _probe(path)["streams"][0]
        sizes.append((stream["width"], stream["height"]))
    assert sizes == [(320, 240), (640, 360)]


def test_rtp_timestamp_wrap_keeps_time_running(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    start = 2**32 - 45_000  # wraps half a second in
    wrapped = [(d, (start + pts) % 2**32, k) for d, pts, k in vp8_packets]
    frames = [EncodedFrame(d, pts, k, CLOCK_BASE + 1 + i / 30) for i, (d, pts, k) in enumerate(wrapped)]
    writer = SegmentWriter(
        tmp_path / "v",
        TrackInfo("v", "vp8", CLOCK_BASE),
        signer,
        RecorderConfig(segment_duration_s=1, reserve_bytes=0),
    )
    for frame in frames:
        writer.write(frame)
    writer.close()
    assert writer.dropped_frames == 0
    total = writer.segments[-1].media_end_us - writer.segments[0].media_start_us
    assert abs(total - 3_000_000) < 40_000


def test_out_of_order_frames_are_dropped_not_fatal(
    tmp_path: Path, vp8_packets: Packets, signer: ManifestSigner
) -> None:
    frames = as_frames(vp8_packets[:10], VIDEO_RATE, CLOCK_BASE + 1)
    writer = SegmentWriter(
        tmp_path / "v", TrackInfo("v", "vp8", CLOCK_BASE), signer, RecorderConfig(reserve_bytes=0)
    )
    for frame in [*frames[:5], frames[3], *frames[5:]]:
        writer.write(frame)
    writer.close()
    assert writer.dropped_frames == 1
    assert writer.segments[0].frames == 10


def test_empty_track_still_gets_a_verifiable_manifest(tmp_path: Path, signer: ManifestSigner) -> None:
    writer = SegmentWriter(tmp_path / "v", TrackInfo("v", "vp8", CLOCK_BASE), signer)
    manifest = writer.close()
    assert manifest["signed"]["segments"] == []
    assert manifest["signed"]["chain_head"] == "00" * 32
    assert verify_recording(tmp_path / "v").exit_code == 0
    assert not (tmp_path / "v" / ".reserve").exists()


def test_bad_input_is_refused(tmp_path: Path, signer: ManifestSigner) -> None:
    with pytest.raises(UnsupportedCodecError):
        TrackInfo("t", "av1", CLOCK_BASE)
    with pytest.raises(ValueError):
        TrackInfo("../escape", "vp8", CLOCK_BASE)
    with pytest.raises(ValueError):
        RecorderConfig(segment_duration_s=0)
    writer = SegmentWriter(tmp_path / "v", TrackInfo("v", "vp8", CLOCK_BASE), signer)
    writer.close()
    with pytest.raises(RecordingError):
        writer.write(EncodedFrame(b"x", 0, True, CLOCK_BASE))
    with pytest.raises(RecordingError, match="already holds"):
        SegmentWriter(tmp_path / "v", TrackInfo("v", "vp8", CLOCK_BASE), signer)


def test_keyframe_is_requested_when_a_segment_overruns(tmp_path: Path, signer: ManifestSigner) -> None:
    packets = video_packets("vp8", seconds=2.0, gop=1000)  # a single keyframe
    asked: list[int] = []
    writer = SegmentWriter(
        tmp_path / "v",
        TrackInfo("v", "vp8", CLOCK_BASE),
        signer,
        RecorderConfig(segment_duration_s=0.5, reserve_bytes=0),
        keyframe_wanted=lambda: asked.append(1),
    )
    for frame in as_frames(packets, VIDEO_RATE, CLOCK_BASE + 1):
        writer.write(frame)
    writer.close()
    assert asked == [1]  # once per overrunning segment, not per frame
    assert writer.segment_count == 1


def test_consecutive_keyframes_of_different_sizes(tmp_path: Path, signer: ManifestSigner) -> None:
    small = video_packets("vp8", seconds=0.1, size=(320, 240), gop=1)
    big = video_packets("vp8", seconds=0.1, size=(640, 360), gop=1)
    frames = [(small[0][0], 0, True), (big[0][0], 3000, True), (big[1][0], 6000, True)]
    writer = record(tmp_path / "v", "vp8", frames, signer, segment_s=10)
    sizes = [
        (s["streams"][0]["width"], s["streams"][0]["height"])
        for s in (_probe(tmp_path / "v" / e.file) for e in writer.segments)
    ]
    assert sizes == [(320, 240), (640, 360)]
