"""Seal a track folder left behind by a crash (SIGKILL, power loss).

Every segment the journal lists was sealed and stays as it is. A segment that was being
written is remuxed packet by packet up to the first damaged one; if that yields at least one
packet it becomes a sealed segment marked `recovered`, otherwise it is renamed `*.dropped`
and listed under `dropped` in the manifest. A salvaged original is replaced by its remux.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error

from .chain import GENESIS, hash_file
from .errors import NotARecordingError, RecordingError
from .journal import Journal, read_journal
from .manifest import ManifestSigner, build_manifest, parse_manifest, write_manifest
from .model import CONTAINERS, MANIFEST_NAME, DroppedSegment, SegmentEntry
from .sealing import release_reserve, seal_segment, segment_name
from .segment_writer import TAG_INDEX, TAG_MEDIA_START

_LEFTOVER = re.compile(r"^seg_(\d{6})(\.webm|\.mkv)(\.part)?$")


@dataclass(frozen=True)
class RecoveryReport:
    track_dir: Path
    already_sealed: bool
    sealed: int
    recovered: list[SegmentEntry]
    dropped: list[DroppedSegment]
    manifest: dict[str, Any] | None


def recover(track_dir: Path, signer: ManifestSigner, *, fsync: bool = True) -> RecoveryReport:
    track_dir = Path(track_dir)
    manifest_path = track_dir / MANIFEST_NAME
    state = read_journal(track_dir)
    if manifest_path.exists() and state.ended is not None:
        with contextlib.suppress(RecordingError):
            manifest = parse_manifest(manifest_path.read_bytes())
            return RecoveryReport(track_dir, True, len(state.segments), [], [], manifest)
    if state.track is None:
        raise NotARecordingError(f"{track_dir} has no recording journal")
    journaled = {entry.file for entry in state.segments}
    leftovers = sorted(
        (int(m.group(1)), p)
        for p in track_dir.iterdir()
        if (m := _LEFTOVER.match(p.name)) and p.name not in journaled
    )
    journal = Journal(track_dir, fsync=fsync)
    segments = list(state.segments)
    chain = bytes.fromhex(segments[-1].chain) if segments else GENESIS
    recovered: list[SegmentEntry] = []
    dropped: list[DroppedSegment] = []
    try:
        for _, path in leftovers:
            index = len(segments)
            after_us = segments[-1].media_end_us if segments else 0
            entry = _salvage(path, track_dir, state.track, index, after_us, journal, chain, fsync)
            if entry is None:
                dropped.append(_drop(path, "could not be remuxed"))
                continue
            segments.append(entry)
            recovered.append(entry)
            chain = bytes.fromhex(entry.chain)
        journal.append({"type": "end", "reason": "recovered"})
    finally:
        journal.close()
    release_reserve(track_dir)
    manifest = build_manifest(state.track, segments, dropped, "recovered", signer)
    write_manifest(track_dir, manifest, fsync=fsync)
    return RecoveryReport(track_dir, False, len(state.segments), recovered, dropped, manifest)


def _drop(path: Path, reason: str) -> DroppedSegment:
    target = path.with_name(path.name.removesuffix(".part") + ".dropped")
    path.replace(target)
    sha256, size = hash_file(target)
    return DroppedSegment(file=target.name, size=size, sha256=sha256, reason=reason)


def _salvage(
    source: Path,
    track_dir: Path,
    track: dict[str, Any],
    index: int,
    after_us: int,
    journal: Journal,
    chain: bytes,
    fsync: bool,
) -> SegmentEntry | None:
    """Copy every intact packet of `source` into a fresh segment; None if there is none."""
    fmt, extension = CONTAINERS[track["codec"]]
    tmp = track_dir / (segment_name(index, extension) + ".recovering")
    frames = 0
    start = end = 0
    try:
        with av.open(str(source), "r") as inp:
            in_stream = inp.streams[0]
            # The header (written first, so it survives a crash) says where the segment starts.
            base_us = int(inp.metadata.get(TAG_MEDIA_START, after_us))
            with av.open(str(tmp), "w", format=fmt) as out:
                out.metadata.update({k: v for k, v in inp.metadata.items() if k.startswith("RTC_")})
                out.metadata[TAG_INDEX] = str(index)
                out_stream = out.add_stream_from_template(in_stream)
                demux = inp.demux(in_stream)
                while True:
                    try:
                        packet = next(demux)
                    except (StopIteration, av.error.FFmpegError, EOFError):
                        break
                    if packet.dts is None or packet.pts is None or packet.is_corrupt:
                        if packet.dts is None:
                            continue
                        break
                    if frames == 0 and not packet.is_keyframe:
                        break
                    tb = packet.time_base
                    packet_start = base_us + int(packet.pts * tb * 1_000_000)
                    packet_end = base_us + int((packet.pts + (packet.duration or 0)) * tb * 1_000_000)
                    if frames == 0:
                        start = packet_start
                    end = max(end, packet_end)
                    packet.stream = out_stream
                    out.mux(packet)
                    frames += 1
    except (av.error.FFmpegError, OSError, IndexError, ValueError):
        frames = 0
    if frames == 0:
        tmp.unlink(missing_ok=True)
        return None
    clock_base_us = int(track["clock_base_us"])
    entry = seal_segment(
        journal,
        tmp,
        segment_name(index, extension),
        chain,
        index=index,
        # Arrival times died with the process: wall times are derived from media times.
        media_us=(start, end),
        wall_us=(clock_base_us + start, clock_base_us + end),
        frames=frames,
        recovered=True,
        fsync=fsync,
    )
    if source.exists() and source.name != entry.file:
        source.unlink()
    return entry
