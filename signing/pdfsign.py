"""The PDF pipeline: evidence, completion page, signer's signature, bank seal, timestamps, B-LT.

Every function here is synchronous and CPU-bound: call it from a worker thread (or process),
never on the event loop. pyhanko's sync API runs its own ``asyncio.run`` inside, which needs a
thread without a running loop.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import x509
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, InnerScaling, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.general import SigningError as PyhankoSigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    SigDSSPlacementPreference,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from .authority import CertificateAuthority
from .errors import PdfInputError, PdfSigningError, SigningError, TimestampError
from .evidence_pdf import (
    SEAL_BOX,
    SIGNER_BOX,
    CompletionRecord,
    EvidenceAttachment,
    append_completion_pages,
    embed_attachments,
)
from .fonts import cjk_font
from .keys import InMemoryKey, KeySource, SigningKey
from .oneshot import SignerIdentity, issue_one_shot
from .revocation import CrlSource, signing_validation_context

MAX_HANDWRITING_BYTES = 512 * 1024
MAX_HANDWRITING_PIXELS = 2000 * 1000


@dataclass
class SigningMaterial:
    """Everything the pipeline needs, whether from the dev PKI or from production keys."""

    issuing_ca: CertificateAuthority
    seal: KeySource
    timestamper: Callable[[], TimeStamper]
    """A fresh TimeStamper per operation (pyhanko caches per-instance dummy responses)."""
    trust_roots: Sequence[x509.Certificate]
    crl_source: CrlSource
    organization: str = "rtc-server"


@dataclass(frozen=True)
class ContractSigningRequest:
    transaction_id: str
    signer: SignerIdentity
    completion: CompletionRecord
    id_salt: bytes = field(repr=False)
    attachments: Sequence[EvidenceAttachment] = ()
    handwritten_png: bytes | None = None
    reason: str = "I agree to the terms of this contract"
    location: str | None = None


@dataclass(frozen=True)
class SignedPdf:
    pdf: bytes
    sha256: str
    signer_certificate: bytes | None = None
    """DER of the one-shot certificate (None for a seal-only document)."""


def _reader_checked(pdf: bytes) -> None:
    if not pdf.startswith(b"%PDF-"):
        raise PdfInputError("not a PDF (missing %PDF- header)")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise PdfInputError("encrypted PDFs are not supported")
        _ = reader.root["/Pages"]["/Count"]
    except (PdfError, KeyError, ValueError, TypeError) as e:
        raise PdfInputError(f"unreadable PDF: {e}") from e


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        stack.extend([e.__cause__, e.__context__])
    return None


def _run_signer(
    pdf: bytes,
    *,
    key: SigningKey,
    material: SigningMaterial,
    field_name: str,
    box: tuple[int, int, int, int] | None,
    page: int,
    name: str,
    reason: str,
    location: str | None,
    lta: bool,
    stamp: TextStampStyle | None,
    text_params: dict[str, str] | None,
) -> bytes:
    vc = signing_validation_context(material.trust_roots, material.crl_source, key.chain)
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=True,
        use_pades_lta=lta,
        validation_context=vc,
        reason=reason,
        location=location,
        name=name,
        signer_key_usage={"non_repudiation"},
        # Validation data goes into the signature's own revision and, for the document
        # timestamp, before it: the last timestamp then covers the whole file, which is what
        # "no changes after the last signature" means to pdfsig and Acrobat. VRI entries are
        # deprecated in PAdES and would force a trailing revision.
        dss_settings=DSSContentSettings(
            include_vri=False,
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
            next_ts_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
        ),
    )
    signer = PdfSigner(
        meta,
        key.pdf_signer(),
        timestamper=material.timestamper(),
        stamp_style=stamp,
        new_field_spec=SigFieldSpec(sig_field_name=field_name, on_page=page, box=box),
    )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        out = signer.sign_pdf(writer, appearance_text_params=text_params)
    except Exception as e:
        ts = _find_cause(e, TimestampError)
        if ts is not None:
            raise ts from e
        if isinstance(e, SigningError):
            raise
        if isinstance(e, PathValidationError | PathBuildingError):
            # Checked before signing (and hard-fail on revocation): never sign with a
            # certificate that could not be shown valid and unrevoked at this moment.
            raise PdfSigningError(f"{field_name}: certificate not valid for signing: {e}") from e
        if isinstance(e, PyhankoSigningError | PdfError | ValueError):
            raise PdfSigningError(f"{field_name}: {e}") from e
        raise
    return bytes(out.getvalue())


def _stamp_text(texts: Sequence[str]) -> tuple[TextBoxStyle, Callable[[str], str]]:
    """A stamp's text style for `texts`, and what to pass its parameters through: pyhanko's default
    (a standard font) when it can show them, else the CJK font (fonts.py). With no CJK font
    installed, a character the standard font cannot show becomes '?' rather than a wrong glyph.

    Latin-1, not all of WinAnsi: pyhanko writes a standard font's text in PDFDocEncoding, which
    agrees with WinAnsi only there (a '€' would come out as another glyph)."""
    font = None if all(_latin1(t) == t for t in texts) else cjk_font()
    if font is not None:
        return TextBoxStyle(font=font.for_text("".join(texts)).factory()), str
    return TextBoxStyle(), _latin1


def _latin1(text: str) -> str:
    return text.encode("latin-1", errors="replace").decode("latin-1")


def _handwriting(png: bytes) -> PdfImage:
    from PIL import Image, UnidentifiedImageError

    if len(png) > MAX_HANDWRITING_BYTES:
        raise PdfInputError("handwritten signature image is too large")
    try:
        img = Image.open(io.BytesIO(png))
        if img.format != "PNG":
            raise PdfInputError("handwritten signature must be a PNG")
        if img.width * img.height > MAX_HANDWRITING_PIXELS:
            raise PdfInputError("handwritten signature image has too many pixels")
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise PdfInputError("handwritten signature is not a readable PNG") from e
    return PdfImage(img)


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def sign_contract(pdf: bytes, request: ContractSigningRequest, material: SigningMaterial) -> SignedPdf:
    """Embed evidence, append the completion page, then signer signature, seal, timestamps, LTV.

    Revisions: evidence + page; signer's signature (with signature timestamp); DSS; the seal
    (signature timestamp); DSS and a document timestamp.
    """
    _reader_checked(pdf)
    stamp_bg = _handwriting(request.handwritten_png) if request.handwritten_png else None
    original_sha256 = hashlib.sha256(pdf).hexdigest()
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        embed_attachments(writer, request.attachments)
        last_page = append_completion_pages(writer, request.completion, request.attachments, original_sha256)
        buf = io.BytesIO()
        writer.write(buf)
    except (PdfError, KeyError, ValueError) as e:
        raise PdfInputError(f"cannot prepare PDF: {e}") from e
    prepared = buf.getvalue()

    key: InMemoryKey | None = issue_one_shot(
        material.issuing_ca,
        request.signer,
        transaction_id=request.transaction_id,
        salt=request.id_salt,
    )
    assert key is not None
    cert_der = bytes(key.certificate.dump())
    transaction = request.transaction_id[:40]
    text_style, shown = _stamp_text((request.signer.name, transaction))
    signer_style = TextStampStyle(
        stamp_text="Signed by %(signer)s\n%(ts)s\nTransaction %(tx)s",
        text_box_style=text_style,
        background=stamp_bg,
        background_opacity=1.0,
        # Fit the drawing to the box; pyhanko's default margins hit a float rounding warning.
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID,
            y_align=AxisAlignment.ALIGN_MID,
            margins=Margins.uniform(4),
            inner_content_scaling=InnerScaling.STRETCH_TO_FIT,
        ),
        border_width=0,
    )
    try:
        signed = _run_signer(
            prepared,
            key=key,
            material=material,
            field_name="Signer",
            box=SIGNER_BOX,
            page=last_page,
            name=request.signer.name,
            reason=request.reason,
            location=request.location,
            lta=False,
            stamp=signer_style,
            text_params={
                "signer": shown(request.signer.name),
                "ts": _now_text(),
                "tx": shown(transaction),
            },
        )
    finally:
        key.destroy()
        key = None  # the certificate stays; nothing else referenced the private key
    sealed = _seal(signed, material, page=last_page, box=SEAL_BOX, reason="Electronic seal of the bank")
    return SignedPdf(pdf=sealed, sha256=hashlib.sha256(sealed).hexdigest(), signer_certificate=cert_der)


def _seal(
    pdf: bytes,
    material: SigningMaterial,
    *,
    page: int,
    box: tuple[int, int, int, int] | None,
    reason: str,
    field_name: str = "BankSeal",
) -> bytes:
    with material.seal.open() as seal_key:
        org = material.organization
        # pyhanko names the signer in the stamp from the seal certificate's subject.
        text_style, _ = _stamp_text((org, seal_key.certificate.subject.human_friendly))
        style = TextStampStyle(
            stamp_text="Sealed by %(signer)s\n%(ts)s", border_width=1, text_box_style=text_style
        )
        return _run_signer(
            pdf,
            key=seal_key,
            material=material,
            field_name=field_name,
            box=box,
            page=page,
            name=org,
            reason=reason,
            location=None,
            lta=True,
            stamp=style if box is not None else None,
            text_params={"ts": _now_text()},
        )


def seal_pdf(
    pdf: bytes, material: SigningMaterial, *, reason: str = "Electronic seal of the bank"
) -> SignedPdf:
    """Seal a generated document (inspection report): invisible seal, timestamps, B-LT, doc timestamp."""
    _reader_checked(pdf)
    sealed = _seal(pdf, material, page=0, box=None, reason=reason)
    return SignedPdf(pdf=sealed, sha256=hashlib.sha256(sealed).hexdigest())
