"""The inspection report as a PDF: what a credit committee reads, built from the session's records.

Pure: `build_report(ReportData) -> bytes` (blocking, tens to hundreds of milliseconds with stills:
run it in a worker thread). Sealing and storing are the caller's (rtc_server.inspection).

Text goes through a CJK-capable TrueType font (Chinese names, sites and hint words); ReportLab reads
TrueType outlines only, so WenQuanYi (Debian fonts-wqy-microhei or fonts-wqy-zenhei) rather than
Noto CJK (CFF outlines). Without one the report falls back to Helvetica, with a warning logged.
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from rtc_server.models import ChecklistItem, Participant, Session, iso
from signing.fonts import FONT_CANDIDATES

log = logging.getLogger(__name__)

FALLBACK_FONT = "Helvetica"
MONO_FONT = "Courier"
PAGE_WIDTH = A4[0] - 36 * mm
JPEG_QUALITY = 88


@dataclass(frozen=True)
class RecordingFact:
    track_id: str
    participant_id: str | None
    kind: str | None
    codec: str | None
    sealed: bool
    segments: int
    chain_head: str | None
    manifest_sha256: str | None


@dataclass(frozen=True)
class StillFact:
    still_id: str
    ts: str
    media_time: float
    width: int
    height: int
    sha256: str
    taken_by: str
    image: bytes | None


@dataclass(frozen=True)
class ReportData:
    session_id: str
    title: str
    organization: str
    officer: str
    state: str
    site: dict[str, Any] | None
    created_at: str
    ended_at: str | None
    participants: Sequence[Participant]
    items: Sequence[ChecklistItem]
    trail: Sequence[dict[str, Any]]
    stills: Sequence[StillFact]
    recordings: Sequence[RecordingFact]
    generated_at: str = field(default_factory=lambda: iso(datetime.now(UTC).timestamp()) or "")

    @classmethod
    def from_records(
        cls,
        *,
        session: Session,
        officer: str,
        organization: str,
        participants: Sequence[Participant],
        items: Sequence[ChecklistItem],
        trail: Sequence[dict[str, Any]],
        still_images: dict[str, bytes],
        recordings: Sequence[RecordingFact],
    ) -> ReportData:
        stills = [
            StillFact(
                still_id=e["data"]["still_id"],
                ts=e["data"]["ts"],
                media_time=e["data"]["media_time"],
                width=e["data"]["width"],
                height=e["data"]["height"],
                sha256=e["data"]["sha256"],
                taken_by=e["actor"],
                image=still_images.get(e["data"]["still_id"]),
            )
            for e in trail
            if e["type"] == "snapshot.taken"
        ]
        return cls(
            session_id=session.id,
            title=session.title,
            organization=organization,
            officer=officer,
            state=session.state,
            site=session.details.get("site"),
            created_at=iso(session.created_at) or "",
            ended_at=iso(session.ended_at),
            participants=participants,
            items=items,
            trail=trail,
            stills=stills,
            recordings=recordings,
        )

    @property
    def head(self) -> str:
        return self.trail[-1]["hash"] if self.trail else "0" * 64


@functools.cache
def register_font(path: Path | None = None) -> str:
    """The font name to write with: a CJK TrueType font if one is installed, else Helvetica."""
    for candidate in (path,) if path is not None else FONT_CANDIDATES:
        if candidate is not None and candidate.is_file():
            try:
                pdfmetrics.registerFont(TTFont("ReportCJK", str(candidate), subfontIndex=0))
            except Exception as exc:  # a broken or CFF-outline font file
                log.warning("report font %s unusable: %s", candidate, exc)
                continue
            return "ReportCJK"
    log.warning(
        "no CJK TrueType font found (%s): the report uses %s and cannot show Chinese; "
        "install the Debian package fonts-wqy-microhei",
        ", ".join(str(p) for p in ((path,) if path else FONT_CANDIDATES)),
        FALLBACK_FONT,
    )
    return FALLBACK_FONT


class _Styles:
    def __init__(self, font: str) -> None:
        self.title = ParagraphStyle("title", fontName=font, fontSize=17, leading=22, spaceAfter=4)
        self.h2 = ParagraphStyle("h2", fontName=font, fontSize=12.5, leading=16, spaceBefore=10, spaceAfter=4)
        self.body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
        self.small = ParagraphStyle("small", fontName=font, fontSize=7.5, leading=9.5)
        self.mono = ParagraphStyle("mono", fontName=MONO_FONT, fontSize=7, leading=9)


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text)).replace("\n", "<br/>"), style)


def _table(rows: list[list[Any]], widths: list[float], font: str) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), font),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
                ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#9aa5b1")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _names(data: ReportData) -> dict[str, str]:
    return {p.id: f"{p.name} ({p.role.value})" for p in data.participants}


def _device(device: dict[str, Any] | None) -> str:
    if not device:
        return "not reported"
    parts = []
    for key, value in device.items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        parts.append(f"{key}: {text}")
    return "; ".join(parts)[:600]


def _media_time(value: Any) -> str:
    return f"{float(value):.1f} s" if isinstance(value, int | float) else "-"


def describe_event(event: dict[str, Any], names: dict[str, str]) -> str:
    """One audit event in words (the raw type stays beside it in the report)."""
    d = event.get("data") or {}
    who = names.get(d.get("participant_id", ""), d.get("participant_id") or "")
    kind = event["type"]
    if kind == "session.created":
        return f"Inspection created: {d.get('title', '')}, {len(d.get('items') or [])} checklist item(s)"
    if kind == "invite.created":
        return f"Invite issued for the {d.get('role')} role, valid until {d.get('expires_at')}"
    if kind == "participant.added":
        return f"{who} added to the session"
    if kind == "participant.joined":
        return f"{who} joined"
    if kind == "participant.left":
        return f"{who} left"
    if kind == "participant.location":
        return f"{who} shared the location {d.get('latitude')}, {d.get('longitude')}"
    if kind == "media.published":
        return f"{who} started publishing ({d.get('via')})"
    if kind == "media.unpublished":
        return f"{who} stopped publishing ({d.get('reason')})"
    if kind == "media.watching":
        return f"{who} started watching {names.get(d.get('source', ''), d.get('source'))}"
    if kind == "media.stopped_watching":
        return f"{who} stopped watching ({d.get('reason')})"
    if kind == "session.live":
        return "The inspection went live"
    if kind == "session.ended":
        return "The inspection ended"
    if kind == "code.detected":
        match = f"checklist item {d['sku']} (sighting {d.get('count', 1)})" if d.get("sku") else "no item"
        flag = ", UNEXPECTED" if d.get("unexpected") else ""
        at = _media_time(d.get("media_time"))
        return f"Code {d.get('value')} ({d.get('format')}) read at {at}: {match}{flag}"
    if kind == "quality.hint":
        state = "on" if d.get("active") else "off"
        return f"Picture quality hint '{d.get('hint')}' {state} at {_media_time(d.get('media_time'))}"
    if kind == "snapshot.taken":
        return (
            f"Still {d.get('still_id')} taken ({d.get('width')}x{d.get('height')}, "
            f"media time {_media_time(d.get('media_time'))})"
        )
    if kind == "recording.sealed":
        return f"Recording {d.get('track_id')} sealed: {d.get('segments')} segment(s)"
    if kind in ("recording.failed", "recording.frames_dropped"):
        return f"Recording problem on {d.get('track_id') or who}: {d.get('reason') or d.get('count')}"
    if kind == "report.issued":
        return f"Report issued, SHA-256 {d.get('sha256')}"
    compact = json.dumps(d, ensure_ascii=False, sort_keys=True)
    return compact if len(compact) <= 160 else compact[:157] + "..."


def _facts(data: ReportData, s: _Styles, font: str) -> list[Flowable]:
    site = data.site or {}
    site_text = ", ".join(f"{k}: {v}" for k, v in site.items()) if site else "not given"
    rows = [
        ["Session", data.session_id],
        ["Title", data.title],
        ["Site", site_text],
        ["Officer", data.officer],
        ["Created", data.created_at],
        ["Ended", data.ended_at or "-"],
        ["State", data.state],
        ["Report generated", data.generated_at],
    ]
    return [_table([[_p(a, s.body), _p(b, s.body)] for a, b in rows], [40 * mm, PAGE_WIDTH - 40 * mm], font)]


def _participants(data: ReportData, s: _Styles, font: str) -> list[Flowable]:
    rows: list[list[Any]] = [[_p(h, s.small) for h in ("Participant", "Joined / left", "Device")]]
    for p in data.participants:
        rows.append(
            [
                _p(f"{p.name} ({p.role.value})\n{p.id}", s.small),
                _p(f"{iso(p.joined_at) or '-'} / {iso(p.left_at) or '-'}", s.small),
                _p(_device(p.device), s.small),
            ]
        )
    return [_table(rows, [45 * mm, 45 * mm, PAGE_WIDTH - 90 * mm], font)]


def _locations(data: ReportData, s: _Styles, font: str) -> list[Flowable]:
    names = _names(data)
    found = [e for e in data.trail if e["type"] == "participant.location"]
    if not found:
        return [_p("No participant shared a location.", s.body)]
    rows: list[list[Any]] = [
        [_p(h, s.small) for h in ("Reported at", "Participant", "Latitude, longitude", "Accuracy")]
    ]
    for e in found:
        d = e["data"]
        acc = d.get("accuracy")
        rows.append(
            [
                _p(e["ts"], s.small),
                _p(names.get(d.get("participant_id", ""), d.get("participant_id")), s.small),
                _p(f"{d.get('latitude'):.6f}, {d.get('longitude'):.6f}", s.small),
                _p(f"+/- {acc:.0f} m" if isinstance(acc, int | float) else "-", s.small),
            ]
        )
    return [_table(rows, [40 * mm, 45 * mm, 50 * mm, PAGE_WIDTH - 135 * mm], font)]


def _checklist(data: ReportData, s: _Styles, font: str) -> list[Flowable]:
    if not data.items:
        return [_p("The inspection had no checklist.", s.body)]
    seen = sum(1 for i in data.items if i.seen_count > 0)
    out: list[Flowable] = [
        _p(f"{seen} of {len(data.items)} item(s) seen; {len(data.items) - seen} missing.", s.body),
        Spacer(1, 3),
    ]
    rows: list[list[Any]] = [
        [_p(h, s.small) for h in ("SKU", "Description", "Expected", "Sightings", "Status", "First seen")]
    ]
    for item in data.items:
        status = "SEEN" if item.seen_count > 0 else "MISSING"
        rows.append(
            [
                _p(item.sku, s.small),
                _p(item.description or "", s.small),
                _p("-" if item.expected_qty is None else item.expected_qty, s.small),
                _p(item.seen_count, s.small),
                _p(status, s.small),
                _p(iso(item.first_seen_at) or "-", s.small),
            ]
        )
    widths = [38 * mm, PAGE_WIDTH - 146 * mm, 18 * mm, 18 * mm, 18 * mm, 54 * mm]
    table = _table(rows, widths, font)
    for row, item in enumerate(data.items, 1):
        colour = "#e3f4e1" if item.seen_count > 0 else "#fbe3e1"
        table.setStyle(TableStyle([("BACKGROUND", (4, row), (4, row), colors.HexColor(colour))]))
    out.append(table)
    return out


def _codes(data: ReportData, s: _Styles, font: str) -> list[Flowable]:
    found = [e for e in data.trail if e["type"] == "code.detected"]
    if not found:
        return [_p("No code was read.", s.body)]
    unexpected = sum(1 for e in found if e["data"].get("unexpected"))
    out: list[Flowable] = [
        _p(f"{len(found)} sighting(s), {unexpected} of a code not on the checklist (unexpected).", s.body),
        Spacer(1, 3),
    ]
    rows: list[list[Any]] = [[_p(h, s.small) for h in ("Time", "Media time", "Value", "Format", "Matches")]]
    for e in found:
        d = e["data"]
        match = d.get("sku") or ("UNEXPECTED" if d.get("unexpected") else "-")
        rows.append(
            [
                _p(e["ts"], s.small),
                _p(_media_time(d.get("media_time")), s.small),
                _p(d.get("value"), s.small),
                _p(d.get("format"), s.small),
                _p(match, s.small),
            ]
        )
    out.append(_table(rows, [40 * mm, 20 * mm, PAGE_WIDTH - 125 * mm, 25 * mm, 40 * mm], font))
    return out


def _as_jpeg(image: bytes) -> bytes:
    """A full-resolution JPEG copy to embed: PDF viewers show it the same, and a report with a dozen
    1280x720 stills stays a few megabytes (embedded losslessly each costs about 2 MB)."""
    if image.startswith(b"\xff\xd8"):
        return image
    from PIL import Image as PilImage

    with PilImage.open(io.BytesIO(image)) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _stills(data: ReportData, s: _Styles) -> list[Flowable]:
    if not data.stills:
        return [_p("No still was taken.", s.body)]
    out: list[Flowable] = []
    for n, still in enumerate(data.stills, 1):
        caption = (
            f"Still {n} ({still.still_id}): taken {still.ts}, media time {_media_time(still.media_time)}, "
            f"{still.width}x{still.height} pixels, by {still.taken_by}"
        )
        parts: list[Flowable] = [_p(caption, s.body)]
        if still.image is not None:
            width = min(PAGE_WIDTH, 150 * mm)
            height = width * still.height / max(1, still.width)
            parts.append(Image(io.BytesIO(_as_jpeg(still.image)), width=width, height=height))
        else:
            parts.append(_p("The image file is missing from the data directory.", s.body))
        parts += [_p(f"SHA-256 {still.sha256} (the lossless original, in the evidence package)", s.mono)]
        parts.append(Spacer(1, 6))
        out.append(KeepTogether(parts))
    return out


def _timeline(data: ReportData, s: _Styles, font: str) -> list[Flowable]:
    names = _names(data)
    rows: list[list[Any]] = [[_p(h, s.small) for h in ("#", "Time", "What happened", "Event")]]
    for e in data.trail:
        rows.append(
            [
                _p(e["seq"], s.small),
                _p(e["ts"], s.small),
                _p(describe_event(e, names), s.small),
                _p(e["type"], s.small),
            ]
        )
    return [_table(rows, [10 * mm, 38 * mm, PAGE_WIDTH - 83 * mm, 35 * mm], font)]


def _recordings(data: ReportData, s: _Styles) -> list[Flowable]:
    if not data.recordings:
        return [_p("Nothing was recorded.", s.body)]
    names = _names(data)
    out: list[Flowable] = []
    for r in data.recordings:
        who = names.get(r.participant_id or "", r.participant_id or "?")
        state = "sealed" if r.sealed else "NOT sealed"
        out.append(_p(f"{r.track_id}: {who}, {r.kind} {r.codec}, {r.segments} segment(s), {state}", s.body))
        out.append(_p(f"chain head      {r.chain_head or '-'}", s.mono))
        out.append(_p(f"manifest SHA-256 {r.manifest_sha256 or '-'}", s.mono))
        out.append(Spacer(1, 3))
    return out


def build_report(data: ReportData, font_path: Path | None = None) -> bytes:
    """The unsigned report PDF (blocking)."""
    font = register_font(font_path)
    s = _Styles(font)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Inspection report {data.session_id}",
        author=data.organization,
        subject=data.title,
        creator="rtc-server",
    )
    story: list[Flowable] = [
        _p("Inspection report 检查报告", s.title),
        _p(f"{data.organization}. This report is sealed and timestamped by the bank.", s.body),
        Spacer(1, 6),
    ]
    sections = (
        ("Session 会话", _facts(data, s, font)),
        ("Participants and devices 参与者与设备", _participants(data, s, font)),
        ("Location 位置", _locations(data, s, font)),
        ("Checklist 清单", _checklist(data, s, font)),
        ("Codes read 识别的条码", _codes(data, s, font)),
        ("Stills 截图", _stills(data, s)),
        ("Recordings 录像", _recordings(data, s)),
        ("Timeline 时间线", _timeline(data, s, font)),
    )
    for heading, flowables in sections:
        story.append(_p(heading, s.h2))
        story.extend(flowables)
    story += [
        _p("Audit trail 审计记录", s.h2),
        _p(
            f"{len(data.trail)} event(s) hash-chained (SHA-256); the head below is the hash of the last "
            "event in this report. GET /api/v1/sessions/{id}/events/verify re-checks the chain.",
            s.body,
        ),
        _p(f"head {data.head}", s.mono),
    ]

    def footer(canvas: Any, doc_: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.drawString(18 * mm, 9 * mm, f"Inspection {data.session_id} - page {doc_.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
