"""``verify_pdf_main`` (rtc-server verify-pdf) and validation of documents that should fail."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from signing import DevPki, SigningMaterial, seal_pdf, validate_pdf, verify_pdf_main
from signing.validate import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE
from tests.signing.helpers import CONTRACT_TEXT, make_pdf


@pytest.fixture(scope="module")
def sealed(material: SigningMaterial) -> bytes:
    return seal_pdf(make_pdf(), material).pdf


def _run(path: Path, trust: list[Path]) -> tuple[int, str]:
    out = io.StringIO()
    code = verify_pdf_main(path, trust, out)
    return code, out.getvalue()


def test_exit_codes(sealed: bytes, pki: DevPki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca_pem())
    good = tmp_path / "good.pdf"
    good.write_bytes(sealed)
    code, text = _run(good, [ca])
    assert code == EXIT_OK, text
    assert "Result: VALID" in text and "Example Bank Electronic Seal" in text and "TSA time" in text

    tampered = tmp_path / "bad.pdf"
    tampered.write_bytes(sealed.replace(CONTRACT_TEXT, CONTRACT_TEXT.upper()))
    code, text = _run(tampered, [ca])
    assert code == EXIT_INVALID and "NOT VALID" in text and "BROKEN" in text

    code, text = _run(good, [])
    assert code == EXIT_INVALID and "no trust anchors given" in text

    unsigned = tmp_path / "unsigned.pdf"
    unsigned.write_bytes(make_pdf())
    code, text = _run(unsigned, [ca])
    assert code == EXIT_INVALID and "no signature" in text

    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"not a pdf at all")
    assert _run(junk, [ca])[0] == EXIT_UNREADABLE
    assert _run(tmp_path / "missing.pdf", [ca])[0] == EXIT_UNREADABLE
    assert _run(good, [tmp_path / "missing-ca.pem"])[0] == EXIT_UNREADABLE


def test_a_foreign_root_does_not_make_it_trusted(sealed: bytes, tmp_path: Path) -> None:
    other = DevPki.open(tmp_path / "other", "http://127.0.0.1:9/crl", "Another Bank")
    report = validate_pdf(sealed, [other.root_cert])
    assert not report.ok
    assert all(s.intact and s.valid and not s.trusted for s in report.signatures)
    assert report.signatures[0].revocation == "unknown"


def test_a_signature_without_ltv_data_is_not_trusted_offline(material: SigningMaterial, pki: DevPki) -> None:
    """Revocation is checked only against data in the file: strip nothing, but sign without DSS."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    with material.seal.open() as key:
        out = signers.sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(make_pdf())),
            signers.PdfSignatureMetadata(field_name="NoLtv"),
            signer=key.pdf_signer(),
        )
    report = validate_pdf(out.getvalue(), [pki.root_cert])
    assert not report.ok and not report.ltv_data
    assert report.signatures[0].intact and report.signatures[0].valid
    assert not report.signatures[0].trusted  # CRL not embedded: revocation unknown, hard fail
