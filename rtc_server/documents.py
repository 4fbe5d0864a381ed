"""Contract documents: checking an upload is a usable PDF and storing it by content hash.

Both run in a worker thread: parsing a 20 MB PDF or hashing it would stall every call and media
stream on the event loop.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from rtc_server.errors import BadRequest


@dataclass(frozen=True)
class PdfInfo:
    pages: int
    sha256: str
    size: int


def inspect_pdf(data: bytes) -> PdfInfo:
    """Raise BadRequest unless `data` is an unencrypted PDF with at least one page."""
    if not data.lstrip()[:5] == b"%PDF-":
        raise BadRequest("The document is not a PDF file.", code="invalid_pdf")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise BadRequest(
                "The PDF is encrypted or password-protected; upload an unprotected copy.",
                code="encrypted_pdf",
            )
        pages = int(reader.root["/Pages"]["/Count"])
    except BadRequest:
        raise
    except (PdfError, KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise BadRequest(f"The PDF could not be read: {exc}", code="invalid_pdf") from None
    if pages < 1:
        raise BadRequest("The PDF has no pages.", code="invalid_pdf")
    return PdfInfo(pages=pages, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def store_blob(root: Path, data: bytes, sha256: str, suffix: str) -> Path:
    """Write `data` under root/<aa>/<sha256><suffix> atomically; identical content is stored once."""
    target = root / sha256[:2] / f"{sha256}{suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
