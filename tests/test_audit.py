"""The audit chain, recomputed from API.md's definition alone."""

from __future__ import annotations

import copy
import hashlib
import json

from rtc_server.audit import GENESIS_HASH, make_event, verify_chain


def _trail(n: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    prev = None
    for i in range(n):
        event = make_event(
            prev, f"2026-11-25T10:00:0{i}.000Z", "t", "user:a", {"i": i, "note": "é", "x": 1.5}
        )
        events.append(event)
        prev = event
    return events


def test_hash_matches_the_published_definition() -> None:
    event = make_event(None, "2026-11-25T10:00:00.000Z", "session.created", "user:a", {"b": 1, "a": "x"})
    # RFC 8785 for this shape: sorted keys, no whitespace, UTF-8.
    body = {k: event[k] for k in ("seq", "ts", "type", "actor", "data", "prev_hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert event["prev_hash"] == GENESIS_HASH
    assert event["hash"] == hashlib.sha256(GENESIS_HASH.encode() + canonical).hexdigest()


def test_intact_chain_verifies() -> None:
    assert verify_chain(_trail(5)) is None
    assert verify_chain([]) is None


def test_each_kind_of_tampering_names_the_first_bad_event() -> None:
    base = _trail(5)

    edited = copy.deepcopy(base)
    edited[2]["data"] = {"i": 99}
    assert verify_chain(edited).seq == 3  # type: ignore[union-attr]

    rehashed = copy.deepcopy(base)  # an attacker who recomputes one hash breaks the next link
    rehashed[1]["actor"] = "user:mallory"
    rehashed[1] = make_event(rehashed[0], rehashed[1]["ts"], "t", "user:mallory", rehashed[1]["data"])  # type: ignore[arg-type]
    broken = verify_chain(rehashed)
    assert broken is not None and broken.seq == 3 and "prev_hash" in broken.reason

    removed = base[:2] + base[3:]
    assert verify_chain(removed).seq == 3  # type: ignore[union-attr]

    swapped = [base[0], base[2], base[1], *base[3:]]
    assert verify_chain(swapped).seq == 2  # type: ignore[union-attr]

    malformed = copy.deepcopy(base)
    del malformed[0]["type"]
    assert verify_chain(malformed).seq == 1  # type: ignore[union-attr]
