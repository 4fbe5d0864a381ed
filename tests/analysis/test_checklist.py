"""Checklist matching and sighting de-duplication (pure logic)."""

from __future__ import annotations

import pytest

from rtc_server.analysis import BBox, Checklist, Detection, Sightings, normalise_code

BOX = BBox(0.1, 0.2, 0.3, 0.1)


def qr(value: str) -> Detection:
    return Detection(value, "qr_code", BOX)


def ean(value: str) -> Detection:
    return Detection(value, "ean_13", BOX)


def test_gtin_forms_compare_equal_and_other_codes_verbatim() -> None:
    assert normalise_code("012345678905") == normalise_code("0012345678905")  # UPC-A vs EAN-13
    assert normalise_code(" 4006381333931 ") == "04006381333931"
    assert normalise_code("SKU-1") == "SKU-1"
    assert normalise_code("12345") == "12345"  # not a GTIN length


def test_match_record_and_missing() -> None:
    checklist = Checklist({"SKU-A": 2, "4006381333931": None, "SKU-C": None})
    assert checklist.match("SKU-A") == "SKU-A"
    assert checklist.match("04006381333931") == "4006381333931"
    assert checklist.match("sku-a") is None  # case matters in codes
    assert checklist.record("SKU-A", 1.5) == ("SKU-A", 1)
    assert checklist.record("SKU-A", 9.0) == ("SKU-A", 2)
    assert checklist.record("NOPE", 2.0) == (None, 1)
    items = {i.sku: i for i in checklist.items()}
    assert items["SKU-A"].seen and items["SKU-A"].count == 2 and items["SKU-A"].first_seen == 1.5
    assert items["SKU-A"].expected_qty == 2
    assert not items["SKU-C"].seen
    assert checklist.missing() == ["4006381333931", "SKU-C"]
    assert checklist.unexpected() == {"NOPE": 1}


@pytest.mark.parametrize(
    "items",
    [["SKU-A", "SKU-A"], ["", "B"], {"A": -1}, ["4006381333931", "04006381333931"], {"A": 1.5}],
)
def test_bad_checklists_are_refused(items: object) -> None:
    with pytest.raises(ValueError):
        Checklist(items)  # type: ignore[arg-type]


def test_repeats_within_window_are_one_sighting() -> None:
    sightings = Sightings(Checklist(["SKU-A"]), repeat_window_s=3.0)
    first = sightings.observe(qr("SKU-A"), 10.0, 1000.0)
    assert first is not None and first.sku == "SKU-A" and first.count == 1 and not first.unexpected
    # Held in view: read every 0.2 s for 10 s, each read within the window of the previous one.
    assert all(sightings.observe(qr("SKU-A"), 10.0 + i * 0.2, 1000.0) is None for i in range(1, 50))
    # Out of view for longer than the window, then back: a second sighting, counted.
    again = sightings.observe(qr("SKU-A"), 24.0, 1014.0)
    assert again is not None and again.count == 2
    assert sightings.checklist.items()[0].count == 2


def test_unknown_code_is_unexpected_only_when_there_is_a_checklist() -> None:
    with_list = Sightings(Checklist(["SKU-A"]), 3.0).observe(qr("OTHER"), 1.0, 0.0)
    assert with_list is not None and with_list.unexpected and with_list.sku is None
    without = Sightings(Checklist(), 3.0).observe(qr("OTHER"), 1.0, 0.0)
    assert without is not None and not without.unexpected


def test_linear_codes_need_confirming_reads() -> None:
    sightings = Sightings(Checklist(["4006381333931"]), 3.0, confirm_reads_linear=2)
    assert sightings.observe(ean("4006381333931"), 1.0, 0.0) is None
    # A single misread of another number never becomes an event...
    assert sightings.observe(ean("0086318333931"), 1.1, 0.0) is None
    event = sightings.observe(ean("4006381333931"), 1.2, 0.0)
    assert event is not None and event.sku == "4006381333931" and event.format == "ean_13"
    assert sightings.observe(ean("0086318333931"), 9.0, 0.0) is None  # ...not even later on its own
    assert sightings.checklist.unexpected() == {}
    # QR carries error correction: one read is enough.
    assert Sightings(Checklist(), 3.0, confirm_reads_linear=3).observe(qr("X"), 0.0, 0.0) is not None


def test_media_time_restart_is_a_new_sighting() -> None:
    sightings = Sightings(Checklist(["SKU-A"]), 3.0)
    assert sightings.observe(qr("SKU-A"), 500.0, 0.0) is not None
    assert sightings.observe(qr("SKU-A"), 0.1, 0.0) is not None  # publisher reconnected: clock restarted


def test_event_data_is_json_ready() -> None:
    event = Sightings(Checklist(["SKU-A"]), 3.0).observe(qr("SKU-A"), 1.23456, 1700000000.5)
    assert event is not None
    assert event.type == "code.detected"
    assert event.data() == {
        "value": "SKU-A",
        "format": "qr_code",
        "bbox": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.1},
        "media_time": 1.235,
        "wallclock": 1700000000.5,
        "unexpected": False,
        "sku": "SKU-A",
        "count": 1,
    }


def test_bad_sightings_settings() -> None:
    with pytest.raises(ValueError):
        Sightings(Checklist(), -1.0)
    with pytest.raises(ValueError):
        Sightings(Checklist(), 1.0, confirm_reads_linear=0)
