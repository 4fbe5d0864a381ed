"""Turning a finished segment file into a chained, journaled entry, and the space reserve."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .chain import chain_link, hash_file
from .journal import Journal, fsync_dir
from .model import SegmentEntry

RESERVE_NAME = ".reserve"


def segment_name(index: int, extension: str) -> str:
    return f"seg_{index:06d}{extension}"


def seal_segment(
    journal: Journal,
    tmp_path: Path,
    final_name: str,
    prev_chain: bytes,
    *,
    index: int,
    media_us: tuple[int, int],
    wall_us: tuple[int, int],
    frames: int,
    recovered: bool,
    fsync: bool,
) -> SegmentEntry:
    """Hash, rename into place and journal a segment whose bytes are already on disk."""
    if fsync:
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    sha256, size = hash_file(tmp_path)
    final_path = tmp_path.with_name(final_name)
    tmp_path.replace(final_path)
    if fsync:
        fsync_dir(final_path.parent)
    draft = SegmentEntry(
        index=index,
        file=final_name,
        size=size,
        sha256=sha256,
        media_start_us=media_us[0],
        media_end_us=media_us[1],
        wall_start_us=wall_us[0],
        wall_end_us=wall_us[1],
        frames=frames,
        recovered=recovered,
        chain="",
    )
    chain = chain_link(prev_chain, bytes.fromhex(sha256), draft.metadata()).hex()
    entry = SegmentEntry(**{**draft.to_json(), "chain": chain})
    journal.append({"type": "segment", "entry": entry.to_json()})
    return entry


def make_reserve(track_dir: Path, size: int) -> None:
    """Set disk space aside so the manifest can be written after the disk fills."""
    if size <= 0:
        return
    path = track_dir / RESERVE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (95,):  # EOPNOTSUPP: fall back to writing zeros
                raise
            os.write(fd, bytes(size))
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def release_reserve(track_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (track_dir / RESERVE_NAME).unlink()
