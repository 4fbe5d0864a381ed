"""End to end: a contract signed by a one-shot certificate, sealed, timestamped, B-LT.

Checked by pyhanko (through ``validate_pdf``), poppler's pdfsig (NSS) and openssl.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from asn1crypto import cms, crl, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import PdfTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore

from signing import (
    CompletionStep,
    DevPki,
    EvidenceAttachment,
    GuardedTimeStamper,
    HttpTsaConfig,
    LocalTimeStamper,
    LocalTsa,
    PdfInputError,
    PdfSigningError,
    SignedPdf,
    SigningMaterial,
    TimestampError,
    http_timestamper,
    seal_pdf,
    sign_contract,
    validate_pdf,
)
from tests.signing.helpers import CONTRACT_TEXT, make_pdf, make_png, make_request, pdfsig


@pytest.fixture(scope="module")
def signed(material: SigningMaterial) -> SignedPdf:
    return sign_contract(make_pdf(), make_request(png=make_png()), material)


@pytest.fixture
def signed_file(signed: SignedPdf, tmp_path: Path) -> Path:
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed.pdf)
    return path


def test_pyhanko_reports_every_signature_intact_valid_trusted(signed: SignedPdf, pki: DevPki) -> None:
    report = validate_pdf(signed.pdf, [pki.root_cert])
    assert report.ok, report.to_text()
    kinds = [(s.field_name, s.kind) for s in report.signatures]
    assert kinds[:2] == [("Signer", "signature"), ("BankSeal", "signature")]
    assert kinds[2][1] == "document_timestamp"
    signer, seal, doc_ts = report.signatures
    assert "Ana Lucía Pérez" in signer.signer and "Example Bank Electronic Seal" in seal.signer
    for s in report.signatures:
        assert s.intact and s.valid and s.trusted and s.revocation == "good"
        assert s.timestamp_ok and s.timestamp_time is not None
    assert signer.modification_level == "form_filling"  # the seal and its field came later
    assert seal.modification_level == "lta_updates"  # only DSS and the document timestamp
    assert doc_ts.whole_document and doc_ts.modification_level == "none"
    assert report.revisions_after_last_signature == 0
    assert report.ltv_data
    # B-LT: the CRLs of both CAs and the chain sit in the DSS
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(signed.pdf)))
    crls = [crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    crl_issuers = {c["tbs_cert_list"]["issuer"].native["common_name"] for c in crls}
    assert crl_issuers == {"Example Bank Root CA", "Example Bank Issuing CA"}
    certs = [x509.Certificate.load(ref.get_object().data) for ref in dss.certs.values()]
    assert {c.subject.native["common_name"] for c in certs} >= {
        "Example Bank Issuing CA",
        "Example Bank Timestamp Authority",
    }


def test_the_one_shot_certificate_signed_the_contract(signed: SignedPdf) -> None:
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    signer_sig = next(s for s in reader.embedded_signatures if s.field_name == "Signer")
    assert signer_sig.signer_cert.dump() == signed.signer_certificate


def test_pdfsig_says_valid_and_trusted_with_the_dev_root(signed_file: Path, nssdb: Path) -> None:
    entries = pdfsig(signed_file, nssdb)
    assert [e.field for e in entries][:2] == ["Signer", "BankSeal"]
    assert len(entries) == 3
    for e in entries[:2]:
        assert e.signature_valid and e.certificate_trusted, e.text
    # poppler 22 does not verify document timestamps, but shows the last one covers the whole file
    assert entries[2].total_document_signed
    # without the NSS db holding our root, the same signatures are valid but not trusted
    untrusted = pdfsig(signed_file)
    assert untrusted[0].signature_valid and not untrusted[0].certificate_trusted


def test_openssl_verifies_the_document_timestamp(signed: SignedPdf, pki: DevPki, tmp_path: Path) -> None:
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    doc_ts = next(s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp")
    start1, len1, start2, len2 = (int(x) for x in doc_ts.byte_range)
    (tmp_path / "data.bin").write_bytes(
        signed.pdf[start1 : start1 + len1] + signed.pdf[start2 : start2 + len2]
    )
    token = cms.ContentInfo.load(doc_ts.pkcs7_content)
    (tmp_path / "token.der").write_bytes(token.dump())
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem())
    (tmp_path / "chain.pem").write_bytes((pki.directory / "issuing.crt").read_bytes())
    cmd = [
        "openssl",
        "ts",
        "-verify",
        "-token_in",
        "-in",
        str(tmp_path / "token.der"),
        "-CAfile",
        str(tmp_path / "ca.pem"),
        "-untrusted",
        str(tmp_path / "chain.pem"),
        "-data",
    ]
    ok = subprocess.run([*cmd, str(tmp_path / "data.bin")], capture_output=True, text=True)
    assert "Verification: OK" in ok.stdout, ok.stderr
    (tmp_path / "data.bin").write_bytes(b"x" + (tmp_path / "data.bin").read_bytes()[1:])
    bad = subprocess.run([*cmd, str(tmp_path / "data.bin")], capture_output=True, text=True)
    assert "Verification: OK" not in bad.stdout


def test_openssl_verifies_the_signature_timestamps(signed: SignedPdf, pki: DevPki, tmp_path: Path) -> None:
    """RFC 3161: each signature's timestamp token covers that signature's value."""
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem())
    (tmp_path / "chain.pem").write_bytes((pki.directory / "issuing.crt").read_bytes())
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    checked = 0
    for sig in reader.embedded_regular_signatures:
        attrs = sig.signer_info["unsigned_attrs"]
        token = next(a["values"][0] for a in attrs if a["type"].native == "signature_time_stamp_token")
        (tmp_path / "token.der").write_bytes(token.dump())
        (tmp_path / "sig.bin").write_bytes(sig.signer_info["signature"].native)
        res = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                "-token_in",
                "-in",
                str(tmp_path / "token.der"),
                "-data",
                str(tmp_path / "sig.bin"),
                "-CAfile",
                str(tmp_path / "ca.pem"),
                "-untrusted",
                str(tmp_path / "chain.pem"),
            ],
            capture_output=True,
            text=True,
        )
        assert "Verification: OK" in res.stdout, res.stderr
        checked += 1
    assert checked == 2


def test_evidence_attachments_and_completion_page(signed_file: Path, tmp_path: Path) -> None:
    listing = subprocess.run(["pdfdetach", "-list", str(signed_file)], capture_output=True, text=True).stdout
    assert "audit-trail.json" in listing and "manifest-video.json" in listing
    subprocess.run(["pdfdetach", "-save", "1", "-o", str(tmp_path / "a.json"), str(signed_file)], check=True)
    assert (tmp_path / "a.json").read_bytes() == make_request().attachments[0].data
    info = subprocess.run(["pdfinfo", str(signed_file)], capture_output=True, text=True).stdout
    assert re.search(r"^Pages:\s+2$", info, re.M), info
    page = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", "-layout", str(signed_file), "-"], capture_output=True, text=True
    ).stdout
    for expected in (
        "Certificate of completion",
        "tx-0001",
        "Ana Lucía Pérez",  # WinAnsi covers Latin-1
        "203.0.113.7, Madrid (ES)",
        "Identity confirmed on live video",
        "0:00:42.125",
        "0:01:37.500",
        "a" * 64,
        "audit-trail.json",
    ):
        assert expected in page, expected
    first = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(signed_file), "-"], capture_output=True, text=True
    )
    assert CONTRACT_TEXT.decode() in first.stdout


def test_handwritten_image_is_in_the_signer_appearance(signed: SignedPdf) -> None:
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    field = next(
        f for f in reader.root["/AcroForm"]["/Fields"] if f.get_object()["/T"] == "Signer"
    ).get_object()

    def images(obj: generic.PdfObject, depth: int = 0) -> int:
        obj = obj.get_object() if isinstance(obj, generic.IndirectObject) else obj
        if depth > 6 or not isinstance(obj, generic.DictionaryObject):
            return 0
        count = 1 if obj.get("/Subtype") == "/Image" else 0
        xobjects = obj.get("/Resources", generic.DictionaryObject()).get(
            "/XObject", generic.DictionaryObject()
        )
        return count + sum(images(v, depth + 1) for v in xobjects.values())

    assert images(field["/AP"]["/N"]) >= 1


def test_a_byte_changed_in_a_signed_range_fails_both_validators(
    signed: SignedPdf, pki: DevPki, nssdb: Path, tmp_path: Path
) -> None:
    assert signed.pdf.count(CONTRACT_TEXT) == 1
    tampered = signed.pdf.replace(CONTRACT_TEXT, CONTRACT_TEXT.replace(b"42", b"43"))
    report = validate_pdf(tampered, [pki.root_cert])
    assert not report.ok
    assert all(not s.intact for s in report.signatures)
    assert "the signed bytes were changed" in report.signatures[0].problems
    (tmp_path / "t.pdf").write_bytes(tampered)
    for entry in pdfsig(tmp_path / "t.pdf", nssdb)[:2]:
        assert not entry.signature_valid
        assert "Digest Mismatch" in entry.text or "Invalid" in entry.text


def test_an_incremental_update_changing_a_page_fails_both_validators(
    signed: SignedPdf, pki: DevPki, nssdb: Path, tmp_path: Path
) -> None:
    w = IncrementalPdfFileWriter(io.BytesIO(signed.pdf))
    overlay = w.add_object(generic.StreamObject(stream_data=b"BT /F1 30 Tf 72 600 Td (PAID IN FULL) Tj ET"))
    w.add_stream_to_page(0, overlay)
    out = io.BytesIO()
    w.write(out)
    report = validate_pdf(out.getvalue(), [pki.root_cert])
    assert not report.ok
    assert report.revisions_after_last_signature == 1
    assert all(s.intact and s.valid and s.trusted for s in report.signatures)  # bytes intact...
    assert all(
        any("modified after signing" in p for p in s.problems) for s in report.signatures
    )  # ...document not
    (tmp_path / "u.pdf").write_bytes(out.getvalue())
    entries = pdfsig(tmp_path / "u.pdf", nssdb)
    # pdfsig cannot judge the change itself; what it shows is that nothing covers the whole file now
    assert entries and not any(e.total_document_signed for e in entries)


def test_a_later_document_timestamp_is_an_accepted_revision(
    signed: SignedPdf, material: SigningMaterial, pki: DevPki
) -> None:
    w = IncrementalPdfFileWriter(io.BytesIO(signed.pdf))
    out = PdfTimeStamper(material.timestamper()).timestamp_pdf(w, "sha256")
    report = validate_pdf(out.getvalue(), [pki.root_cert])
    assert report.ok, report.to_text()
    assert [s.kind for s in report.signatures].count("document_timestamp") == 2


def test_seal_a_generated_report(material: SigningMaterial, pki: DevPki, nssdb: Path, tmp_path: Path) -> None:
    sealed = seal_pdf(make_pdf(pages=3), material, reason="Inspection report")
    report = validate_pdf(sealed.pdf, [pki.root_cert])
    assert report.ok, report.to_text()
    assert [s.kind for s in report.signatures] == ["signature", "document_timestamp"]
    (tmp_path / "r.pdf").write_bytes(sealed.pdf)
    entry = pdfsig(tmp_path / "r.pdf", nssdb)[0]
    assert entry.signature_valid and entry.certificate_trusted


class _RejectingTsa(LocalTsa):
    def handle_tsa_request(self, der: bytes) -> bytes:
        from signing.tsa import _rejection

        return _rejection("system_failure", "TSA is down for maintenance")


def test_tsa_failures_stop_signing_with_a_typed_error(material: SigningMaterial, pki: DevPki) -> None:
    unreachable = replace(
        material,
        timestamper=lambda: GuardedTimeStamper(
            http_timestamper(HttpTsaConfig("http://127.0.0.1:9/tsa", timeout_s=2)), "test"
        ),
    )
    with pytest.raises(TimestampError, match="timestamp authority"):
        sign_contract(make_pdf(), make_request(), unreachable)
    rejecting = replace(
        material, timestamper=lambda: GuardedTimeStamper(LocalTimeStamper(_RejectingTsa(pki.tsa_key)), "test")
    )
    with pytest.raises(TimestampError):
        sign_contract(make_pdf(), make_request(), rejecting)
    with pytest.raises(TimestampError):
        seal_pdf(make_pdf(), rejecting)


@pytest.mark.parametrize(
    ("pdf", "png", "attachments"),
    [
        (b"GIF89a not a pdf", None, None),
        (b"%PDF-1.7\n garbage without xref", None, None),
        (None, b"\x89PNG\r\n\x1a\n" + b"\x00" * 600_000, None),
        (None, b"GIF89a" + b"\x00" * 100, None),
        (None, "big", None),
        (None, None, [EvidenceAttachment("a.json", b"1"), EvidenceAttachment("a.json", b"2")]),
        (None, None, [EvidenceAttachment("../etc/passwd", b"1")]),
    ],
)
def test_bad_input_is_refused(
    material: SigningMaterial,
    pdf: bytes | None,
    png: bytes | str | None,
    attachments: list[EvidenceAttachment] | None,
) -> None:
    if png == "big":
        png = make_png(3000, 1000)
    request = make_request(png=png if isinstance(png, bytes) else None)
    if attachments is not None:
        request = replace(request, attachments=attachments)
    with pytest.raises(PdfInputError):
        sign_contract(pdf if pdf is not None else make_pdf(), request, material)


def test_a_long_completion_record_spills_onto_more_pages(
    material: SigningMaterial, pki: DevPki, tmp_path: Path
) -> None:
    base = make_request()
    steps = [
        CompletionStep(
            base.completion.completed_at,
            f"Checklist step number {i}",
            "officer.jones",
            i * 1.5,
            "detail " * 20,
        )
        for i in range(60)
    ]
    request = replace(base, completion=replace(base.completion, steps=steps))
    out = sign_contract(make_pdf(), request, material)
    assert validate_pdf(out.pdf, [pki.root_cert]).ok
    (tmp_path / "long.pdf").write_bytes(out.pdf)
    info = subprocess.run(["pdfinfo", str(tmp_path / "long.pdf")], capture_output=True, text=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1))  # type: ignore[union-attr]
    assert pages >= 4
    last = subprocess.run(
        ["pdftotext", "-f", str(pages), "-l", str(pages), str(tmp_path / "long.pdf"), "-"],
        capture_output=True,
        text=True,
    ).stdout
    assert f"page {pages - 1} of {pages - 1}" in last  # completion pages are numbered among themselves
    reader = PdfFileReader(io.BytesIO(out.pdf))
    signer_field = next(
        f for f in reader.root["/AcroForm"]["/Fields"] if f.get_object()["/T"] == "Signer"
    ).get_object()
    assert signer_field["/P"].get_object() == reader.root["/Pages"]["/Kids"][-1].get_object()


def test_signing_without_revocation_data_is_refused(material: SigningMaterial) -> None:
    """The chain is checked (hard fail on revocation) before anything is signed."""
    no_crls = replace(material, crl_source=lambda url: None)
    with pytest.raises(PdfSigningError, match="certificate"):
        sign_contract(make_pdf(), make_request(), no_crls)
    with pytest.raises(PdfSigningError):
        seal_pdf(make_pdf(), no_crls)
