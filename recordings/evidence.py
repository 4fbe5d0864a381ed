"""Evidence packages: stream recordings, manifests and documents into one zip."""

from __future__ import annotations

import asyncio
import queue
import shutil
import threading
import zipfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import IO

EvidenceEntry = tuple[str, Path | bytes]
_MEDIA_SUFFIXES = (".webm", ".mkv", ".mp4", ".pdf", ".zip", ".jpg", ".png")

VERIFY_TXT = """\
How to verify this evidence package offline
===========================================

Recordings
----------
Every recorded track is a folder with media segments (seg_NNNNNN.webm or .mkv, each plays on
its own in a browser, VLC or ffmpeg) and a manifest.json. The manifest is canonical JSON
(RFC 8785) of {"signed": {...}, "signature": {...}, "timestamp_token": ...}:

1. For each entry in signed.segments, in order: the file's size and SHA-256 must equal the
   entry's `size` and `sha256`.
2. The chain: prev = 32 zero bytes; for each entry
       chain = SHA-256(prev || bytes(sha256) || JCS(metadata))
   where metadata is the entry without its "sha256" and "chain" fields and JCS is RFC 8785
   canonical JSON; `chain` must equal the entry's `chain`, and the last one signed.chain_head.
3. signature.value (base64) must verify over JCS(signed) with signed.public_key.spki_pem
   (Ed25519, or ECDSA P-256 with SHA-256 and a DER signature for "ES256-DER"). Compare that
   key's fingerprint (SHA-256 of its DER SubjectPublicKeyInfo) or its certificate chain
   (signed.certificates) with the bank's published key or root certificate (ca.pem).
4. timestamp_token, when present, is an RFC 3161 token whose messageImprint (SHA-256) is the
   chain head: it proves the recording existed, unchanged, at the token's time.

Media times (media_start_us/media_end_us) of a participant's audio and video tracks share one
clock, so segments of different tracks can be lined up. `dropped` lists a segment lost in a
crash; `recovered: true` marks one salvaged from a crash.

With the server's tools:   rtc-server verify-recording <this zip or folder> [--trust ca.pem]
or, with only this package: python -m recordings <this zip or folder> [--trust ca.pem]
Exit code 0: all good; 1: tampered or missing data (the message names the first bad segment);
2: not a recording.
"""


def write_evidence_zip(sink: IO[bytes], entries: Iterable[EvidenceEntry], *, verify_txt: bool = True) -> None:
    """Write a zip to `sink` (need not be seekable), reading files in chunks. Blocking."""
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        if verify_txt:
            archive.writestr("VERIFY.txt", VERIFY_TXT, compress_type=zipfile.ZIP_DEFLATED)
        for arcname, content in entries:
            if arcname.startswith("/") or ".." in arcname.split("/"):
                raise ValueError(f"unsafe name in evidence zip: {arcname!r}")
            compress = (
                zipfile.ZIP_STORED if arcname.lower().endswith(_MEDIA_SUFFIXES) else zipfile.ZIP_DEFLATED
            )
            info = zipfile.ZipInfo(arcname)
            info.compress_type = compress
            if isinstance(content, bytes):
                info.file_size = len(content)
                archive.writestr(info, content)
                continue
            info.file_size = content.stat().st_size
            with content.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1024 * 1024)


class _QueueSink:
    """File-like sink that hands written chunks to a bounded queue (backpressure on the writer)."""

    def __init__(self, chunks: queue.Queue[bytes | BaseException | None]) -> None:
        self._chunks = chunks
        self._position = 0
        self.cancelled = threading.Event()

    def write(self, data: bytes) -> int:
        if self.cancelled.is_set():
            raise OSError("evidence download cancelled")
        self._chunks.put(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass


async def stream_evidence_zip(
    entries: Iterable[EvidenceEntry], *, verify_txt: bool = True, max_chunks: int = 32
) -> AsyncIterator[bytes]:
    """Yield the zip's bytes as they are produced by a worker thread (for a streamed HTTP body)."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=max_chunks)
    sink = _QueueSink(chunks)
    items = list(entries)

    def produce() -> None:
        try:
            write_evidence_zip(sink, items, verify_txt=verify_txt)  # type: ignore[arg-type]
            chunks.put(None)
        except BaseException as exc:
            if not sink.cancelled.is_set():
                chunks.put(exc)

    thread = threading.Thread(target=produce, name="evidence-zip", daemon=True)
    thread.start()
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        sink.cancelled.set()
        while thread.is_alive():  # unblock a producer stuck on a full queue
            try:
                chunks.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)


def recording_entries(root: Path, prefix: str = "recordings") -> list[EvidenceEntry]:
    """Every file of a recording folder (segments, manifests, journals) under `prefix/`."""
    return [
        (f"{prefix}/{p.relative_to(root).as_posix()}", p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
