"""The report builder alone: Chinese text survives into the PDF's text, a missing font falls back to
Helvetica with a warning, and every trail event reads as a sentence."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from rtc_server import report
from rtc_server.models import ChecklistItem, Participant, ParticipantRole, Session, SessionKind

SESSION = Session(
    id="ses_report",
    kind=SessionKind.INSPECTION,
    title="仓库 inspection",
    state="ended",
    created_by="usr_1",
    created_at=1_700_000_000.0,
    updated_at=1_700_000_100.0,
    ended_at=1_700_000_100.0,
    details={"site": {"address": "上海 1 Dock Road"}},
)
STAFF = Participant(
    "par_staff",
    SESSION.id,
    ParticipantRole.STAFF,
    "王芳",
    1_700_000_000.0,
    1_700_000_010.0,
    None,
    {"model": "X"},
)
TRAIL = [
    {
        "seq": 1,
        "ts": "2023-11-14T22:13:20.000Z",
        "type": "session.created",
        "actor": "user:o",
        "data": {"title": "仓库 inspection", "items": ["SKU-1"]},
        "hash": "a" * 64,
    },
    {
        "seq": 2,
        "ts": "2023-11-14T22:13:30.000Z",
        "type": "code.detected",
        "actor": "server",
        "data": {
            "participant_id": "par_staff",
            "value": "XYZ",
            "format": "qr_code",
            "media_time": 3.5,
            "unexpected": True,
        },
        "hash": "b" * 64,
    },
    {
        "seq": 3,
        "ts": "2023-11-14T22:13:40.000Z",
        "type": "something.new",
        "actor": "server",
        "data": {"k": "v"},
        "hash": "c" * 64,
    },
]


def data() -> report.ReportData:
    items = [ChecklistItem(SESSION.id, 0, "SKU-1", "钢材", 2, seen_count=0)]
    return report.ReportData.from_records(
        session=SESSION,
        officer="officer1",
        organization="Bank",
        participants=[STAFF],
        items=items,
        trail=TRAIL,
        still_images={},
        recordings=[],
    )


def text_of(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=30).stdout


def test_cjk_font_carries_chinese_into_the_text(tmp_path: Path) -> None:
    assert report.register_font() != report.FALLBACK_FONT, "install fonts-wqy-microhei"
    text = text_of(report.build_report(data()), tmp_path)
    for needle in ("检查报告", "王芳", "钢材", "上海", "XYZ", "UNEXPECTED", "MISSING", "c" * 64):
        assert needle in text, needle


def test_missing_font_falls_back_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rtc_server.report"):
        pdf = report.build_report(data(), font_path=tmp_path / "no-such-font.ttc")
    assert "no CJK TrueType font" in caplog.text and "fonts-wqy-microhei" in caplog.text
    text = text_of(pdf, tmp_path)
    assert "Inspection report" in text and "SKU-1" in text


def test_events_in_words() -> None:
    names = {"par_staff": "王芳 (staff)"}
    assert report.describe_event(TRAIL[1], names) == "Code XYZ (qr_code) read at 3.5 s: no item, UNEXPECTED"
    joined = {"type": "participant.joined", "data": {"participant_id": "par_staff"}}
    assert report.describe_event(joined, names) == "王芳 (staff) joined"
    assert report.describe_event(TRAIL[2], names) == '{"k": "v"}'
    long = {"type": "x.y", "data": {"k": "v" * 500}}
    assert len(report.describe_event(long, names)) == 160
