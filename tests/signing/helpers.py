"""PDF fixtures and external-tool wrappers (poppler's pdfsig, NSS certutil, openssl) for signing tests."""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from signing import (
    CompletionRecord,
    CompletionStep,
    ContractSigningRequest,
    EvidenceAttachment,
    RecordingDigest,
    SignerIdentity,
)

CONTRACT_TEXT = b"Contract of loan number 42"


def make_pdf(pages: int = 1) -> bytes:
    """A small real PDF made with pyhanko's writer: one line of Helvetica per page."""
    w = PdfFileWriter()
    font = w.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    for i in range(pages):
        content = b"BT /F1 18 Tf 72 720 Td (%s, page %d) Tj ET" % (CONTRACT_TEXT, i + 1)
        res = generic.DictionaryObject({pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})})
        w.insert_page(
            PageObject(w.add_object(generic.StreamObject(stream_data=content)), (0, 0, 612, 792), res)
        )
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def make_request(*, png: bytes | None = None, tx: str = "tx-0001") -> ContractSigningRequest:
    now = datetime.now(UTC)
    audit = b'[{"seq":1,"type":"identity.confirmed"},{"seq":2,"type":"consent.given"}]'
    return ContractSigningRequest(
        transaction_id=tx,
        signer=SignerIdentity(name="Ana Lucía Pérez", id_number="X1234567Z"),
        id_salt=b"per-transaction-salt-0123456789",
        completion=CompletionRecord(
            transaction_id=tx,
            document_name="loan-contract.pdf",
            signer_name="Ana Lucía Pérez",
            officer="officer.jones",
            signer_location="203.0.113.7, Madrid (ES)",
            completed_at=now,
            organization="Example Bank",
            signer_id_verified=True,
            steps=[
                CompletionStep(now, "Signer joined the video session", "signer", 0.0),
                CompletionStep(now, "Identity confirmed on live video", "officer.jones", 42.125),
                CompletionStep(now, "Consent given", "signer", 97.5, detail="accepted the contract terms"),
            ],
            recordings=[RecordingDigest("signer video manifest", "a" * 64)],
        ),
        attachments=[
            EvidenceAttachment("audit-trail.json", audit, "application/json", "hash-chained audit trail"),
            EvidenceAttachment(
                "manifest-video.json", b'{"chain_head":"' + b"b" * 64 + b'"}', "application/json"
            ),
        ],
        handwritten_png=png,
    )


def make_png(width: int = 300, height: int = 100) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(10, 80), (80, 20), (150, 70), (290, 30)], fill=(0, 0, 120, 255), width=4)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class PdfsigEntry:
    field: str
    text: str

    @property
    def signature_valid(self) -> bool:
        return "Signature Validation: Signature is Valid." in self.text

    @property
    def certificate_trusted(self) -> bool:
        return "Certificate Validation: Certificate is Trusted." in self.text

    @property
    def total_document_signed(self) -> bool:
        return "Not total document signed" not in self.text


def pdfsig(path: Path, nssdir: Path | None = None) -> list[PdfsigEntry]:
    """Run pdfsig and split its text per signature (its exit code is 0 even for broken ones)."""
    cmd = ["pdfsig"]
    if nssdir is not None:
        cmd += ["-nssdir", f"sql:{nssdir}"]
    out = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=60).stdout
    entries = []
    for block in re.split(r"^Signature #\d+:\n", out, flags=re.M)[1:]:
        m = re.search(r"Signature Field Name: (.*)", block)
        entries.append(PdfsigEntry(field=m.group(1).strip() if m else "?", text=block))
    return entries


def make_nss_db(directory: Path, ca_pem: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca_pem)
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{directory}",
            "-n",
            "rtc-dev-root",
            "-t",
            "CT,C,C",
            "-i",
            str(directory / "ca.pem"),
        ],
        check=True,
    )
    return directory
