"""Checklist matching and sighting de-duplication: pure logic, no I/O, no clock of its own.

A code held in front of the camera is read in many frames; the same value seen again within
`repeat_window_s` of media time is the same sighting. A new sighting of a code equal to an item's SKU
marks the item seen and counts it; a code that matches no item is unexpected (when there is a list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .events import CodeDetected, Detection

_GTIN_LENGTHS = (8, 12, 13, 14)


def normalise_code(value: str) -> str:
    """The comparison key of a code: trimmed; GTINs (EAN-8, UPC-A, EAN-13, GTIN-14) zero-padded to
    14 digits, because a reader may report the same label as UPC-A or as EAN-13 with a leading 0."""
    v = value.strip()
    if v.isascii() and v.isdigit() and len(v) in _GTIN_LENGTHS:
        return v.zfill(14)
    return v


@dataclass(frozen=True, slots=True)
class ItemState:
    """A checklist item as seen so far."""

    sku: str
    expected_qty: int | None
    count: int
    first_seen: float | None  # media time of the first sighting

    @property
    def seen(self) -> bool:
        return self.count > 0


class Checklist:
    """The SKUs an inspection expects to see, and how often each has been sighted."""

    def __init__(self, items: Iterable[str] | Mapping[str, int | None] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else ((sku, None) for sku in items)
        self._items: dict[str, tuple[str, int | None]] = {}
        for sku, qty in pairs:
            if not isinstance(sku, str) or not sku.strip():
                raise ValueError("a checklist SKU must be a non-empty string")
            if qty is not None and (not isinstance(qty, int) or qty < 0):
                raise ValueError(f"expected_qty of {sku!r} must be a non-negative integer")
            key = normalise_code(sku)
            if key in self._items:
                raise ValueError(f"duplicate checklist SKU {sku!r}")
            self._items[key] = (sku, qty)
        self._counts: dict[str, int] = dict.fromkeys(self._items, 0)
        self._first_seen: dict[str, float] = {}
        self._unexpected: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def match(self, value: str) -> str | None:
        """The SKU (as written in the checklist) this code stands for, or None."""
        hit = self._items.get(normalise_code(value))
        return hit[0] if hit else None

    def record(self, value: str, media_time: float) -> tuple[str | None, int]:
        """Count one sighting; returns (sku or None, the item's or the unexpected code's count)."""
        key = normalise_code(value)
        if key in self._items:
            self._counts[key] += 1
            self._first_seen.setdefault(key, media_time)
            return self._items[key][0], self._counts[key]
        self._unexpected[value] = self._unexpected.get(value, 0) + 1
        return None, self._unexpected[value]

    def items(self) -> list[ItemState]:
        return [
            ItemState(sku, qty, self._counts[key], self._first_seen.get(key))
            for key, (sku, qty) in self._items.items()
        ]

    def missing(self) -> list[str]:
        return [sku for key, (sku, _) in self._items.items() if self._counts[key] == 0]

    def unexpected(self) -> dict[str, int]:
        """Codes read that match no item, with their sighting counts."""
        return dict(self._unexpected)


# Formats with error correction: one read is proof enough. Linear codes carry only a check digit
# (EAN: one digit mod 10), and a blurred EAN-13 can decode to another valid number.
MATRIX_FORMATS = frozenset({"qr_code", "micro_qr_code", "data_matrix", "aztec", "pdf417"})


@dataclass(slots=True)
class _Run:
    reads: int
    last: float
    reported: bool


class Sightings:
    """Turns per-frame detections into `code.detected` events, one per sighting.

    A run of reads of one value, each within `repeat_window_s` of the previous, is one sighting; it
    is reported once the value has been read `confirm_reads_linear` times for 1D formats (once for
    matrix codes), so that a single misread barcode does not tick an item or raise an alarm.
    """

    def __init__(self, checklist: Checklist, repeat_window_s: float, confirm_reads_linear: int = 1) -> None:
        if repeat_window_s < 0:
            raise ValueError("repeat_window_s must be >= 0")
        if confirm_reads_linear < 1:
            raise ValueError("confirm_reads_linear must be >= 1")
        self.checklist = checklist
        self._window = repeat_window_s
        self._confirm = confirm_reads_linear
        self._runs: dict[str, _Run] = {}

    def observe(self, detection: Detection, media_time: float, wallclock: float) -> CodeDetected | None:
        """The event when a new sighting is confirmed, else None (a repeat, or not yet confirmed)."""
        key = normalise_code(detection.value)
        run = self._runs.get(key)
        # abs(): media time restarts when a publisher reconnects; a jump either way is a new view.
        if run is None or abs(media_time - run.last) > self._window:
            self._forget_older_than(media_time)
            run = self._runs[key] = _Run(0, media_time, False)
        run.reads += 1
        run.last = media_time
        needed = 1 if detection.format in MATRIX_FORMATS else self._confirm
        if run.reported or run.reads < needed:
            return None
        run.reported = True
        sku, count = self.checklist.record(detection.value, media_time)
        return CodeDetected(
            value=detection.value,
            format=detection.format,
            bbox=detection.bbox,
            media_time=media_time,
            wallclock=wallclock,
            sku=sku,
            unexpected=sku is None and len(self.checklist) > 0,
            count=count,
        )

    def _forget_older_than(self, media_time: float) -> None:
        # Bounded memory on long sessions: runs outside the window can no longer collapse anything.
        if len(self._runs) > 256:
            self._runs = {k: r for k, r in self._runs.items() if abs(media_time - r.last) <= self._window}
