from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest

from recordings import (
    VERIFY_TXT,
    recording_entries,
    stream_evidence_zip,
    verify_recording,
    write_evidence_zip,
)


class Unseekable(io.RawIOBase):
    """A sink like an HTTP response body: write only, no seek, no tell."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def, override]
        self.data += bytes(b)
        return len(b)


def test_zip_streams_to_an_unseekable_sink_and_verifies(recording: Path, tmp_path: Path) -> None:
    sink = Unseekable()
    entries = [*recording_entries(recording), ("audit/events.json", b"[]")]
    write_evidence_zip(sink, entries)
    archive_path = tmp_path / "evidence.zip"
    archive_path.write_bytes(bytes(sink.data))
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        assert archive.read("VERIFY.txt").decode() == VERIFY_TXT
        assert archive.read("audit/events.json") == b"[]"
        assert archive.testzip() is None
        media = archive.getinfo("recordings/video/seg_000000.webm")
        assert media.compress_type == zipfile.ZIP_STORED
    assert "recordings/video/manifest.json" in names and "recordings/audio/journal.jsonl" in names
    result = verify_recording(archive_path)
    assert result.exit_code == 0, result.message
    assert len(result.tracks) == 2


def test_tampered_zip_names_the_segment(recording: Path, tmp_path: Path) -> None:
    seg = recording / "audio/seg_000002.webm"
    data = bytearray(seg.read_bytes())
    data[-5] ^= 0xFF
    seg.write_bytes(bytes(data))
    archive_path = tmp_path / "evidence.zip"
    with archive_path.open("wb") as sink:
        write_evidence_zip(sink, recording_entries(recording))
    result = verify_recording(archive_path)
    assert result.exit_code == 1
    assert "recordings/audio: segment 2 (seg_000002.webm): SHA-256 mismatch" in result.message


async def test_async_stream_yields_the_same_zip(recording: Path) -> None:
    entries = recording_entries(recording)
    chunks = [chunk async for chunk in stream_evidence_zip(entries, max_chunks=2)]
    assert len(chunks) > 1
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert archive.testzip() is None
        assert {n for n in archive.namelist() if n.endswith("manifest.json")} == {
            "recordings/video/manifest.json",
            "recordings/audio/manifest.json",
        }


async def test_abandoned_stream_stops_the_producer(recording: Path) -> None:
    stream = stream_evidence_zip(recording_entries(recording), max_chunks=1)
    first = await anext(stream)
    assert first.startswith(b"PK")
    # A client that disconnects must not leave the producer thread blocked on a full queue.
    await asyncio.wait_for(stream.aclose(), 5)


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        write_evidence_zip(io.BytesIO(), [(name, b"x")])
