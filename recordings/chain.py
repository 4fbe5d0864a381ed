"""The hash chain over a track's segments and the canonical JSON it is built on.

    chain_i = SHA-256(chain_{i-1} || sha256(segment_i) || JCS(metadata_i))

with chain_{-1} = 32 zero bytes, JCS the RFC 8785 canonical JSON (UTF-8) and metadata_i the
segment entry without its `sha256` and `chain` fields (see `SegmentEntry.metadata`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import rfc8785

from .model import SegmentEntry

GENESIS = bytes(32)
CHUNK = 1024 * 1024


def canonical_json(value: Any) -> bytes:
    return rfc8785.dumps(value)


def chain_link(prev: bytes, segment_hash: bytes, metadata: dict[str, Any]) -> bytes:
    if len(prev) != 32 or len(segment_hash) != 32:
        raise ValueError("chain links are SHA-256 digests")
    return hashlib.sha256(prev + segment_hash + canonical_json(metadata)).digest()


def chain_head(entries: Iterable[SegmentEntry]) -> bytes:
    head = GENESIS
    for entry in entries:
        head = chain_link(head, bytes.fromhex(entry.sha256), entry.metadata())
    return head


def hash_stream(stream: IO[bytes]) -> tuple[str, int]:
    """SHA-256 hex and size, read in chunks so memory stays flat for any file size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def hash_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as stream:
        return hash_stream(stream)
