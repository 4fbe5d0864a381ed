"""What goes into the contract before the first signature: evidence files and a completion page.

The completion page is the human-readable summary a judge or auditor reads first (who, when,
from where, identity and consent steps with their media times, recording hashes), in the spirit
of DocuSign's certificate of completion. It is drawn with the PDF standard fonts in a minimal
content stream: Courier keeps line wrapping exact without font metrics. Standard fonts only
cover WinAnsi (Latin-1 plus a few): other characters print as '?', the attachments keep the
exact UTF-8 text.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject

from .errors import PdfInputError

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


@dataclass(frozen=True)
class _Line:
    font: str  # F1 Helvetica-Bold, F2 Courier, F3 Courier-Bold
    size: float
    text: str
    gap_before: float = 0.0


def _wrap(text: str, size: float, indent: int = 0) -> list[str]:
    """Wrap to the page width; continuation lines are indented (hanging indent)."""
    width = int((PAGE_W - 2 * MARGIN) / (0.6 * size))
    out: list[str] = []
    for para in text.splitlines() or [""]:
        out.extend(
            textwrap.wrap(
                para,
                width=width,
                subsequent_indent=" " * indent,
                break_long_words=True,
                drop_whitespace=False,
                replace_whitespace=False,
            )
            or [""]
        )
    return [line.rstrip() for line in out]


def _lines(
    rec: CompletionRecord, attachments: Sequence[EvidenceAttachment], document_sha256: str
) -> list[_Line]:
    lines: list[_Line] = [_Line("F1", 16, "Certificate of completion")]
    if rec.organization:
        lines.append(_Line("F2", BODY_SIZE, rec.organization, 4))

    def section(title: str) -> None:
        lines.append(_Line("F1", 11, title, 10))

    def kv(key: str, value: str) -> None:
        if len(key) > 17:  # long labels (file names) get their own line rather than be cut
            lines.append(_Line("F2", BODY_SIZE, key, 2))
            key = ""
        for i, chunk in enumerate(_wrap(f"{key:<18}{value}", BODY_SIZE, 18)):
            lines.append(_Line("F2", BODY_SIZE, chunk, 2 if i == 0 else 0))

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
    lines.append(_Line("F3", BODY_SIZE, f"{'Time':<24}{'Media time':<13}{'Actor':<14}Step", 2))
    for step in rec.steps:
        head = f"{_utc(step.at):<24}{_media_time(step.media_time_s):<13}{step.actor[:13]:<14}{step.label}"
        for chunk in _wrap(head, BODY_SIZE, 51):
            lines.append(_Line("F2", BODY_SIZE, chunk))
        if step.detail:
            for chunk in _wrap(" " * 51 + step.detail, BODY_SIZE, 51):
                lines.append(_Line("F2", BODY_SIZE, chunk))
    if rec.recordings:
        section("Recordings (SHA-256)")
        for r in rec.recordings:
            kv(r.label, r.sha256)
    if attachments:
        section("Evidence attached to this PDF (SHA-256)")
        for a in attachments:
            kv(a.name, f"{hashlib.sha256(a.data).hexdigest()}  {len(a.data)} bytes")
    for note in rec.notes:
        for i, chunk in enumerate(_wrap(note, BODY_SIZE)):
            lines.append(_Line("F2", BODY_SIZE, chunk, 8 if i == 0 else 0))
    lines.append(
        _Line(
            "F2",
            BODY_SIZE - 0.5,
            "This page and the attachments were added before the first signature: the signatures"
            " below cover them.",
            10,
        )
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


def _content(page: list[tuple[_Line, float]], index: int, total: int) -> bytes:
    ops = [b"BT"]
    for line, y in page:
        ops.append(
            b"/%s %.1f Tf 1 0 0 1 %.1f %.1f Tm (%s) Tj"
            % (line.font.encode(), line.size, MARGIN, y, _pdf_text(line.text))
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


def _fonts(writer: IncrementalPdfFileWriter) -> generic.DictionaryObject:
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

    return generic.DictionaryObject(
        {
            pdf_name("/F1"): font("Helvetica-Bold"),
            pdf_name("/F2"): font("Courier"),
            pdf_name("/F3"): font("Courier-Bold"),
        }
    )


def append_completion_pages(
    writer: IncrementalPdfFileWriter,
    record: CompletionRecord,
    attachments: Sequence[EvidenceAttachment],
    document_sha256: str,
) -> int:
    """Append the completion page(s); returns the index of the last one (for signature boxes)."""
    pages = _paginate(_lines(record, attachments, document_sha256))
    fonts = _fonts(writer)
    last = -1
    for i, page in enumerate(pages):
        stream = generic.StreamObject(stream_data=_content(page, i, len(pages)))
        stream.compress()
        resources = generic.DictionaryObject({pdf_name("/Font"): fonts})
        page_obj = PageObject(writer.add_object(stream), (0, 0, PAGE_W, PAGE_H), resources)
        writer.insert_page(page_obj)
        last = int(writer.root["/Pages"]["/Count"]) - 1
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
