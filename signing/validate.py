"""Validation of every signature and timestamp in a PDF, as a report and as a CLI exit code.

Signer certificates are checked at the time proven by their signature timestamp (PAdES B-LT):
a one-shot certificate expires an hour after signing, yet the signature stays valid because a
TSA proves it was made while the certificate was valid, and the embedded CRLs prove it was not
revoked then. Revocation data comes only from the file (DSS): validation never goes online.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from asn1crypto import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.general import UnacceptableSignerError
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from .errors import PdfInputError
from .keys import load_certs

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


@dataclass(frozen=True)
class SignatureReport:
    field_name: str
    kind: str  # "signature" or "document_timestamp"
    signer: str
    signing_time: datetime | None
    """Time the signer's own clock claimed (untrusted)."""
    timestamp_time: datetime | None
    """Time proven by a TSA: the signature timestamp, or the document timestamp itself."""
    timestamp_ok: bool | None
    byte_range: tuple[int, ...]
    coverage: str
    whole_document: bool
    intact: bool
    valid: bool
    trusted: bool
    revocation: str  # "good", "revoked" or "unknown"
    modification_level: str | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ValidationReport:
    signatures: tuple[SignatureReport, ...]
    revisions: int
    revisions_after_last_signature: int
    changes_after_last_signature: str | None
    ltv_data: bool
    """Whether the file carries a DSS with revocation data (PAdES B-LT)."""
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.signatures) and all(s.ok for s in self.signatures)

    def to_text(self) -> str:
        out: list[str] = []
        for i, s in enumerate(self.signatures, 1):
            out.append(f"{s.kind.replace('_', ' ').title()} {i}/{len(self.signatures)}: field {s.field_name}")
            out.append(f"  signer:        {s.signer}")
            if s.signing_time is not None:
                out.append(f"  claimed time:  {s.signing_time.isoformat()}")
            if s.timestamp_time is not None:
                ts_state = "" if s.timestamp_ok is None else (" (valid)" if s.timestamp_ok else " (INVALID)")
                out.append(f"  TSA time:      {s.timestamp_time.isoformat()}{ts_state}")
            else:
                out.append("  TSA time:      none")
            ranges = ", ".join(
                f"{s.byte_range[j]}-{s.byte_range[j] + s.byte_range[j + 1]}"
                for j in range(0, len(s.byte_range), 2)
            )
            out.append(f"  covers:        bytes {ranges} ({s.coverage})")
            out.append(
                f"  integrity:     {'intact' if s.intact else 'BROKEN'}, {'valid' if s.valid else 'INVALID'}"
            )
            out.append(f"  trust:         {'trusted' if s.trusted else 'NOT TRUSTED'}")
            out.append(f"  revocation:    {s.revocation}")
            out.append(f"  later changes: {s.modification_level or 'unknown'}")
            for p in s.problems:
                out.append(f"  problem:       {p}")
            out.append(f"  result:        {'OK' if s.ok else 'FAILED'}")
        out.append(
            f"Revisions: {self.revisions}; after the last signature: {self.revisions_after_last_signature}"
            + (f" ({self.changes_after_last_signature})" if self.changes_after_last_signature else "")
        )
        out.append(f"Long-term validation data (DSS): {'present' if self.ltv_data else 'absent'}")
        for p in self.problems:
            out.append(f"Problem: {p}")
        out.append("Result: " + ("VALID" if self.ok else "NOT VALID"))
        return "\n".join(out) + "\n"


def _subject(cert: x509.Certificate) -> str:
    return str(cert.subject.human_friendly)


def _level(level: ModificationLevel | None) -> str | None:
    return None if level is None else level.name.lower()


class _Validator:
    def __init__(self, reader: PdfFileReader, trust_roots: Sequence[x509.Certificate]) -> None:
        self.reader = reader
        self.trust_roots = list(trust_roots)
        try:
            self.dss: DocumentSecurityStore | None = DocumentSecurityStore.read_dss(reader)
        except NoDSSFoundError:
            self.dss = None

    def context(self, moment: datetime | None = None) -> ValidationContext:
        kwargs: dict[str, Any] = {
            "trust_roots": self.trust_roots,
            "allow_fetching": False,
            "revocation_mode": "hard-fail",
            "crls": [],
            "ocsps": [],
        }
        if moment is not None:
            kwargs["moment"] = moment
        if self.dss is None:
            return ValidationContext(**kwargs)
        del kwargs["crls"], kwargs["ocsps"]
        return self.dss.as_validation_context(kwargs)

    @property
    def ltv_data(self) -> bool:
        return self.dss is not None and bool(self.dss.crls or self.dss.ocsps)

    async def signature(self, sig: EmbeddedPdfSignature, later_sigs: bool) -> SignatureReport:
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=self.context(), ts_validation_context=self.context()
        )
        ts = status.timestamp_validity
        ts_ok = None if ts is None else bool(ts.intact and ts.valid and ts.trusted)
        if ts is not None and ts_ok:
            # Point-in-time validation at the TSA-proven signing time (see module docstring).
            status = await async_validate_pdf_signature(
                sig,
                signer_validation_context=self.context(moment=ts.timestamp),
                ts_validation_context=self.context(),
            )
        problems: list[str] = []
        if not status.intact:
            problems.append("the signed bytes were changed")
        if not status.valid:
            problems.append("the cryptographic signature does not verify")
        if not status.trusted:
            problems.append(f"signer not trusted ({_trust_problem(status)})")
        if ts_ok is False:
            problems.append("the signature timestamp is not valid and trusted")
        problems.extend(self._modification_problems(status, later_sigs))
        return SignatureReport(
            field_name=str(sig.field_name),
            kind="signature",
            signer=_subject(sig.signer_cert),
            signing_time=status.signer_reported_dt,
            timestamp_time=ts.timestamp if ts is not None else None,
            timestamp_ok=ts_ok,
            byte_range=tuple(int(x) for x in sig.byte_range),
            coverage=status.coverage.name.lower() if status.coverage else "unknown",
            whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            revocation=_revocation(status),
            modification_level=_level(status.modification_level),
            problems=tuple(problems),
        )

    async def timestamp(self, sig: EmbeddedPdfSignature, later_sigs: bool) -> SignatureReport:
        status = await async_validate_pdf_timestamp(sig, validation_context=self.context())
        problems: list[str] = []
        if not status.intact:
            problems.append("the timestamped bytes were changed")
        if not status.valid:
            problems.append("the timestamp signature does not verify")
        if not status.trusted:
            problems.append(f"TSA not trusted ({_trust_problem(status)})")
        problems.extend(self._modification_problems(status, later_sigs))
        return SignatureReport(
            field_name=str(sig.field_name),
            kind="document_timestamp",
            signer=_subject(sig.signer_cert),
            signing_time=None,
            timestamp_time=status.timestamp,
            timestamp_ok=bool(status.intact and status.valid and status.trusted),
            byte_range=tuple(int(x) for x in sig.byte_range),
            coverage=status.coverage.name.lower() if status.coverage else "unknown",
            whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            revocation=_revocation(status),
            modification_level=_level(status.modification_level),
            problems=tuple(problems),
        )

    @staticmethod
    def _modification_problems(status: Any, later_sigs: bool) -> list[str]:
        level = status.modification_level
        # Later signatures add fields (form filling); after the last one only validation
        # data and document timestamps may follow.
        allowed = ModificationLevel.FORM_FILLING if later_sigs else ModificationLevel.LTA_UPDATES
        if status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            return ["the signature does not cover its whole revision"]
        if level is None or level > allowed:
            return [f"the document was modified after signing ({_level(level) or 'unknown changes'})"]
        if status.docmdp_ok is False:
            return ["changes violate the document's modification permissions"]
        return []


def _trust_problem(status: Any) -> str:
    indic = status.trust_problem_indic
    return str(indic.standard_name) if indic is not None else "no path to a trust anchor"


def _revocation(status: Any) -> str:
    if status.revocation_details is not None:
        return f"revoked on {status.revocation_details.revocation_date.isoformat()}"
    return "good" if status.trusted else "unknown"


async def _validate(reader: PdfFileReader, trust_roots: Sequence[x509.Certificate]) -> ValidationReport:
    v = _Validator(reader, trust_roots)
    sigs = sorted(reader.embedded_signatures, key=lambda s: s.signed_revision)
    reports: list[SignatureReport] = []
    problems: list[str] = []
    for i, sig in enumerate(sigs):
        later = i < len(sigs) - 1
        try:
            if sig.sig_object_type == "/DocTimeStamp":
                reports.append(await v.timestamp(sig, later))
            else:
                reports.append(await v.signature(sig, later))
        except (PdfError, ValueError, UnacceptableSignerError) as e:
            problems.append(f"signature field {sig.field_name}: cannot be validated ({e})")
    total = int(reader.xrefs.total_revisions)
    after = total - 1 - sigs[-1].signed_revision if sigs else total
    trailing = reports[-1].modification_level if reports and after else None
    if not sigs:
        problems.append("the document carries no signature")
    if not trust_roots:
        problems.append("no trust anchors given")
    return ValidationReport(
        signatures=tuple(reports),
        revisions=total,
        revisions_after_last_signature=after,
        changes_after_last_signature=trailing,
        ltv_data=v.ltv_data,
        problems=tuple(problems),
    )


def validate_pdf(pdf: bytes, trust_roots: Sequence[x509.Certificate]) -> ValidationReport:
    """Validate every signature and timestamp; synchronous, call it from a worker thread."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise PdfInputError("encrypted PDFs are not supported")
        _ = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError) as e:
        raise PdfInputError(f"unreadable PDF: {e}") from e
    return asyncio.run(_validate(reader, trust_roots))


def load_trust_roots(paths: Sequence[Path | str]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for p in paths:
        try:
            roots.extend(load_certs(Path(p)))
        except (OSError, ValueError) as e:
            raise PdfInputError(f"cannot read trust anchors from {p}: {e}") from e
    return roots


def verify_pdf_main(pdf_path: Path | str, trust_paths: Sequence[Path | str], out: TextIO) -> int:
    """Back end of ``rtc-server verify-pdf FILE [--trust CA.pem]``: prints the report, returns the exit code.

    0: every signature and timestamp valid and trusted; 1: anything else; 2: unreadable input.
    """
    try:
        data = Path(pdf_path).read_bytes()
    except OSError as e:
        out.write(f"cannot read {pdf_path}: {e.strerror}\n")
        return EXIT_UNREADABLE
    try:
        roots = load_trust_roots(trust_paths)
        report = validate_pdf(data, roots)
    except PdfInputError as e:
        out.write(f"{pdf_path}: {e}\n")
        return EXIT_UNREADABLE
    out.write(f"File: {pdf_path}\n")
    out.write(report.to_text())
    return EXIT_OK if report.ok else EXIT_INVALID
