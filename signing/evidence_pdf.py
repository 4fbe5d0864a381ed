"""What goes into the contract before the first signature: evidence files and a completion page.

The completion page is the human-readable summary a judge or auditor reads first (who, when,
from where, identity and consent steps with their media times, recording hashes), in the spirit
of DocuSign's certificate of completion. It is drawn in a minimal content stream, in columns of
0.6 em: with the PDF standard fonts (Courier) when they can show every text, else with the CJK
font's Mono face (fonts.py), whose Latin has Courier's advance. Without a CJK font installed,
characters outside WinAnsi print as '?'; the attachments keep the exact UTF-8 text either way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject

from .errors import PdfInputError
from .fonts import EmbeddedFont, cjk_font, winansi

PAGE_W, PAGE_H = 595.0, 842.0  # A4 in points
MARGIN = 50.0
BODY_SIZE = 8.5
LINE = 11.5
# Bottom band of the last completion page, kept free for the two visible signatures.
SIGNATURE_BAND_TOP = 190.0
SIGNER_BOX = (int(MARGIN), 60, 290, 170)
SEAL_BOX = (305, 60, int(PAGE_W - MARGIN), 170)


@dataclass(frozen=True)
class EvidenceAttachment:
    name: str
    data: bytes
    mime_type: str = "application/octet-stream"
    description: str = ""


@dataclass(frozen=True)
class CompletionStep:
    at: datetime
    label: str
    actor: str = ""
    media_time_s: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class RecordingDigest:
    label: str
    sha256: str


@dataclass(frozen=True)
class CompletionRecord:
    transaction_id: str
    document_name: str
    signer_name: str
    officer: str
    signer_location: str
    completed_at: datetime
    organization: str = ""
    signer_id_verified: bool = False
    steps: Sequence[CompletionStep] = ()
    recordings: Sequence[RecordingDigest] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def _pdf_text(text: str) -> bytes:
    data = text.encode("cp1252", errors="replace")
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _utc(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _media_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:06.3f}"


# Body text is laid out in columns of 0.6 em: Courier's advance, and Latin's in the CJK Mono face.
COLUMN_EM = 0.6
COLUMNS = int((PAGE_W - 2 * MARGIN) / (COLUMN_EM * BODY_SIZE))
# Where the key-value and step-table columns start.
VALUE_COL = 18
STEP_COLS = (0, 24, 37, 51)


@dataclass(frozen=True)
class _Line:
    font: str  # F1 Helvetica-Bold, F2 Courier (or the CJK face), F3 Courier-Bold
    size: float
    # (column, text): each piece is set at its own column, so a wide character cannot shift the next.
    pieces: tuple[tuple[int, str], ...]
    gap_before: float = 0.0


class _Measure:
    """Text widths in columns: one a character for the standard fonts, advances for the CJK face."""

    def __init__(self, font: EmbeddedFont | None):
        self._font = font

    def __call__(self, text: str) -> float:
        if self._font is None:
            return len(text)
        return self._font.width_em(text) / COLUMN_EM

    def cut(self, text: str, width: float) -> int:
        """How many leading characters of `text` fit in `width` columns (at least one)."""
        used = 0.0
        for i, char in enumerate(text):
            used += self(char)
            if used > width:
                return max(1, i)
        return len(text)


def _wrap(text: str, width: float, measure: _Measure) -> list[str]:
    """Lines of at most `width` columns, broken at spaces where possible, anywhere in CJK runs."""
    out: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in re.findall(r"\s*\S+", para) or [para]:
            if measure(line + word) <= width:
                line += word
                continue
            if line:
                out.append(line.rstrip())
                word = word.lstrip()
            line = word
            while measure(line) > width:
                n = measure.cut(line, width)
                out.append(line[:n].rstrip())
                line = line[n:].lstrip()
        out.append(line.rstrip())
    return out


def _lines(
    rec: CompletionRecord,
    attachments: Sequence[EvidenceAttachment],
    document_sha256: str,
    measure: _Measure,
) -> list[_Line]:
    lines: list[_Line] = [_Line("F1", 16, ((0, "Certificate of completion"),))]
    if rec.organization:
        lines.append(_Line("F2", BODY_SIZE, ((0, rec.organization),), 4))

    def section(title: str) -> None:
        lines.append(_Line("F1", 11, ((0, title),), 10))

    def column(col: int, text: str, gap: float = 0.0, first: tuple[tuple[int, str], ...] = ()) -> None:
        """`text` wrapped from column `col` to the margin; `first` goes before its first line."""
        for i, chunk in enumerate(_wrap(text, COLUMNS - col, measure)):
            lines.append(
                _Line("F2", BODY_SIZE, (*(first if i == 0 else ()), (col, chunk)), gap if i == 0 else 0)
            )

    def kv(key: str, value: str) -> None:
        if measure(key) > VALUE_COL - 1:  # long labels (file names) get their own line rather than be cut
            column(0, key, 2)
            column(VALUE_COL, value)
        else:
            column(VALUE_COL, value, 2, ((0, key),))

    section("Transaction")
    kv("Transaction ID", rec.transaction_id)
    kv("Document", rec.document_name)
    kv("Original SHA-256", document_sha256)
    kv("Completed", _utc(rec.completed_at))
    section("Parties")
    kv("Signer", rec.signer_name)
    kv(
        "Identity",
        "ID number verified on video; kept in the certificate only as a salted SHA-256"
        if rec.signer_id_verified
        else "verified on video by the officer",
    )
    kv("Signer location", rec.signer_location)
    kv("Officer", rec.officer)
    section("Steps (time in UTC; media time = position in the session recording)")
    time_col, media_col, actor_col, step_col = STEP_COLS
    header = ((time_col, "Time"), (media_col, "Media time"), (actor_col, "Actor"), (step_col, "Step"))
    lines.append(_Line("F3", BODY_SIZE, header, 2))
    for step in rec.steps:
        actor = step.actor[: measure.cut(step.actor, step_col - actor_col - 1)]
        first = ((time_col, _utc(step.at)), (media_col, _media_time(step.media_time_s)), (actor_col, actor))
        column(step_col, step.label, 0, first)
        if step.detail:
            column(step_col, step.detail)
    if rec.recordings:
        section("Recordings (SHA-256)")
        for r in rec.recordings:
            kv(r.label, r.sha256)
    if attachments:
        section("Evidence attached to this PDF (SHA-256)")
        for a in attachments:
            kv(a.name, f"{hashlib.sha256(a.data).hexdigest()}  {len(a.data)} bytes")
    for note in rec.notes:
        column(0, note, 8)
    column(
        0,
        "This page and the attachments were added before the first signature: the signatures"
        " below cover them.",
        10,
    )
    return lines


def _paginate(lines: list[_Line]) -> list[list[tuple[_Line, float]]]:
    pages: list[list[tuple[_Line, float]]] = [[]]
    y = PAGE_H - MARGIN
    for line in lines:
        step = line.gap_before + max(LINE, line.size * 1.25)
        if y - step < MARGIN:
            pages.append([])
            y = PAGE_H - MARGIN
            step = max(LINE, line.size * 1.25)
        y -= step
        pages[-1].append((line, y))
    if pages[-1] and pages[-1][-1][1] < SIGNATURE_BAND_TOP:
        pages.append([])  # keep the signature band clear on the page that carries the signatures
    return pages


def _content(page: list[tuple[_Line, float]], index: int, total: int, cjk: GlyphAccumulator | None) -> bytes:
    ops = [b"BT"]
    for line, y in page:
        for col, text in line.pieces:
            x = MARGIN + col * COLUMN_EM * line.size
            if line.font == "F2" and cjk is not None:
                ops.append(
                    b"/FC %.1f Tf 1 0 0 1 %.1f %.1f Tm %s" % (line.size, x, y, cjk.shape(text).graphics_ops)
                )
            else:
                ops.append(
                    b"/%s %.1f Tf 1 0 0 1 %.1f %.1f Tm (%s) Tj"
                    % (line.font.encode(), line.size, x, y, _pdf_text(text))
                )
    ops.append(
        b"/F2 7 Tf 1 0 0 1 %.1f 30 Tm (%s) Tj"
        % (MARGIN, _pdf_text(f"Certificate of completion, page {index + 1} of {total}"))
    )
    ops.append(b"ET")
    if index == total - 1:
        ops.append(b"0.6 G 0.5 w")
        for x0, y0, x1, y1 in (SIGNER_BOX, SEAL_BOX):
            ops.append(b"%d %d %d %d re S" % (x0, y0, x1 - x0, y1 - y0))
    return b"\n".join(ops)


def _fonts(writer: IncrementalPdfFileWriter, cjk: GlyphAccumulator | None) -> generic.DictionaryObject:
    def font(base: str) -> generic.IndirectObject:
        return writer.add_object(
            generic.DictionaryObject(
                {
                    pdf_name("/Type"): pdf_name("/Font"),
                    pdf_name("/Subtype"): pdf_name("/Type1"),
                    pdf_name("/BaseFont"): pdf_name("/" + base),
                    pdf_name("/Encoding"): pdf_name("/WinAnsiEncoding"),
                }
            )
        )

    fonts = generic.DictionaryObject(
        {
            pdf_name("/F1"): font("Helvetica-Bold"),
            pdf_name("/F2"): font("Courier"),
            pdf_name("/F3"): font("Courier-Bold"),
        }
    )
    if cjk is not None:
        fonts[pdf_name("/FC")] = cjk.as_resource()
    return fonts


def _texts(record: CompletionRecord, attachments: Sequence[EvidenceAttachment]) -> list[str]:
    """Every text the page shows that comes from outside this module."""
    texts = [
        record.transaction_id,
        record.document_name,
        record.signer_name,
        record.officer,
        record.signer_location,
        record.organization,
        *record.notes,
    ]
    texts += [t for s in record.steps for t in (s.label, s.actor, s.detail)]
    texts += [r.label for r in record.recordings]
    texts += [a.name for a in attachments]
    return texts


def append_completion_pages(
    writer: IncrementalPdfFileWriter,
    record: CompletionRecord,
    attachments: Sequence[EvidenceAttachment],
    document_sha256: str,
) -> int:
    """Append the completion page(s); returns the index of the last one (for signature boxes).

    Set in the standard fonts when they can show every text, else in the CJK font (see fonts.py).
    """
    texts = _texts(record, attachments)
    face = None if all(winansi(t) for t in texts) else cjk_font(mono=True)
    font = face.for_text("".join(texts)) if face is not None else None
    cjk = font.engine(writer, BODY_SIZE) if font is not None else None
    pages = _paginate(_lines(record, attachments, document_sha256, _Measure(font)))
    fonts = _fonts(writer, cjk)
    last = -1
    for i, page in enumerate(pages):
        stream = generic.StreamObject(stream_data=_content(page, i, len(pages), cjk))
        stream.compress()
        resources = generic.DictionaryObject({pdf_name("/Font"): fonts})
        page_obj = PageObject(writer.add_object(stream), (0, 0, PAGE_W, PAGE_H), resources)
        writer.insert_page(page_obj)
        last = int(writer.root["/Pages"]["/Count"]) - 1
    if cjk is not None:
        cjk.prepare_write()  # embeds the subset of the glyphs shaped above
    return last


def embed_attachments(writer: IncrementalPdfFileWriter, attachments: Sequence[EvidenceAttachment]) -> None:
    names = [a.name for a in attachments]
    if len(set(names)) != len(names):
        raise PdfInputError("attachment names must be unique")
    now = datetime.now(UTC)
    for a in attachments:
        if not a.name or "/" in a.name or "\\" in a.name:
            raise PdfInputError(f"bad attachment name {a.name!r}")
        stream = EmbeddedFileObject.from_file_data(
            writer,
            a.data,
            mime_type=a.mime_type,
            params=EmbeddedFileParams(creation_date=now, modification_date=now),
        )
        try:
            embed_file(
                writer,
                FileSpec(
                    file_spec_string=a.name.encode("ascii", "replace").decode(),
                    file_name=a.name,
                    embedded_data=stream,
                    description=a.description or None,
                ),
            )
        except NotImplementedError as e:
            raise PdfInputError(f"cannot add attachments to this PDF: {e}") from e
