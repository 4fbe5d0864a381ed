"""Crash-safe, append-only record of a track's sealed segments.

One canonical JSON object per line; every append is fsynced before the writer moves on, so a
SIGKILL leaves at worst a torn last line, which `read_journal` ignores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .chain import canonical_json
from .errors import RecordingError
from .model import JOURNAL_NAME, SegmentEntry

JOURNAL_FORMAT = "rtc-server.recording-journal/1"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appender owned by one writer thread."""

    def __init__(self, track_dir: Path, *, fsync: bool = True) -> None:
        self.path = track_dir / JOURNAL_NAME
        self._fsync = fsync
        self._stream: IO[bytes] | None = None

    def append(self, record: dict[str, Any]) -> None:
        if self._stream is None:
            created = not self.path.exists()
            self._stream = self.path.open("ab")
            if created and self._fsync:
                fsync_dir(self.path.parent)
        self._stream.write(canonical_json(record) + b"\n")
        self._stream.flush()
        if self._fsync:
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


@dataclass
class JournalState:
    track: dict[str, Any] | None = None
    segments: list[SegmentEntry] = field(default_factory=list)
    ended: str | None = None
    torn_tail: bool = False


def read_journal(track_dir: Path) -> JournalState:
    path = track_dir / JOURNAL_NAME
    state = JournalState()
    if not path.exists():
        return state
    lines = path.read_bytes().split(b"\n")
    last = len(lines) - 1
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("record is not an object")
            kind = record.get("type")
            if kind == "track":
                if record.get("format") != JOURNAL_FORMAT:
                    raise ValueError("unknown journal format")
                state.track = record["track"]
            elif kind == "segment":
                state.segments.append(SegmentEntry.from_json(record["entry"]))
            elif kind == "end":
                state.ended = str(record.get("reason", ""))
        except (ValueError, KeyError, TypeError) as exc:
            # Only the last line can be torn by a crash; anything earlier is damage.
            if number == last or (number == last - 1 and not lines[last]):
                state.torn_tail = True
                break
            raise RecordingError(f"{path}: line {number + 1} is corrupt: {exc}") from exc
    return state
