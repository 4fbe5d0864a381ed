"""The hash-chained audit trail: pure functions, no I/O.

API.md: `hash` = hex SHA-256 of `prev_hash` (hex; 64 zeros for the first) followed by the canonical JSON
(RFC 8785) of the event without `hash`. Anyone can recompute it from the exported events alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

GENESIS_HASH = "0" * 64
EVENT_FIELDS = ("seq", "ts", "type", "actor", "data", "prev_hash")


def canonical_json(value: Any) -> bytes:
    return rfc8785.dumps(value)


def event_hash(event: Mapping[str, Any]) -> str:
    body = {k: event[k] for k in EVENT_FIELDS}
    digest = hashlib.sha256()
    digest.update(str(event["prev_hash"]).encode("ascii"))
    digest.update(canonical_json(body))
    return digest.hexdigest()


def make_event(
    prev: Mapping[str, Any] | None, ts: str, type_: str, actor: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The next event after `prev` (None for the first), with its hash."""
    event: dict[str, Any] = {
        "seq": 1 if prev is None else int(prev["seq"]) + 1,
        "ts": ts,
        "type": type_,
        "actor": actor,
        "data": dict(data),
        "prev_hash": GENESIS_HASH if prev is None else prev["hash"],
    }
    event["hash"] = event_hash(event)
    return event


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.reason}"


def verify_chain(events: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """Check a whole trail in order; return the first broken link, or None when it is intact."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for event in events:
        seq = int(event.get("seq", -1))
        if seq != expected_seq:
            return ChainBreak(expected_seq, f"missing or out of order (found seq {seq})")
        if event.get("prev_hash") != prev_hash:
            return ChainBreak(seq, "prev_hash does not match the previous event's hash")
        try:
            recomputed = event_hash(event)
        except (KeyError, TypeError, ValueError) as exc:
            return ChainBreak(seq, f"malformed event: {exc}")
        if recomputed != event.get("hash"):
            return ChainBreak(seq, "content does not match its hash")
        prev_hash = recomputed
        expected_seq += 1
    return None
