"""Chinese names on the completion page and in the visible signatures: set in an embedded CJK font,
readable by poppler, columns kept, signatures still valid in both validators."""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from signing import (
    GuardedTimeStamper,
    LocalTimeStamper,
    LocalTsa,
    SignedPdf,
    SigningMaterial,
    evidence_pdf,
    pdfsign,
    sign_contract,
    validate_pdf,
)
from signing.devpki import DevPki
from signing.evidence_pdf import CompletionStep
from signing.fonts import cjk_font
from signing.oneshot import SignerIdentity
from tests.signing.conftest import CRL_BASE
from tests.signing.helpers import make_pdf, make_request, pdfsig

pytestmark = pytest.mark.skipif(cjk_font() is None, reason="no CJK font (make sysdeps installs one)")

NAME = "张伟"
LOCATION = "上海市浦东新区 (CN)"


def chinese_request(tx: str = "tx-cjk") -> object:
    base = make_request(tx=tx)
    now = base.completion.completed_at
    completion = replace(
        base.completion,
        signer_name=NAME,
        signer_location=LOCATION,
        officer="officer.jones",
        steps=[
            CompletionStep(now, "Face matched the ID card", "officer.jones", 42.125),
            CompletionStep(now, "同意合同条款", NAME, 97.5, detail="签字人在视频中口头确认"),
            CompletionStep(now, "Consent given", "signer", 98.0),
        ],
    )
    return replace(
        base, signer=SignerIdentity(name=NAME, id_number="110101199003077777"), completion=completion
    )


@pytest.fixture(scope="module")
def signed_cjk(material: SigningMaterial) -> SignedPdf:
    return sign_contract(make_pdf(), chinese_request(), material)  # type: ignore[arg-type]


def words(path: Path, page: int) -> list[tuple[float, float, str]]:
    """(xMin, yMin, word) of every word poppler reads on a page."""
    html = subprocess.run(
        ["pdftotext", "-f", str(page), "-l", str(page), "-bbox", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        (float(x), float(y), w)
        for x, y, w in re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>([^<]*)</word>', html)
    ]


def test_chinese_text_is_on_the_completion_page_in_columns(signed_cjk: SignedPdf, tmp_path: Path) -> None:
    path = tmp_path / "cjk.pdf"
    path.write_bytes(signed_cjk.pdf)
    text = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", "-layout", str(path), "-"], capture_output=True, text=True
    ).stdout
    for expected in (NAME, "上海市浦东新区", "同意合同条款", "签字人在视频中口头确认", "0:01:37.500"):
        assert expected in text, expected
    assert "?" not in text
    found = words(path, 2)
    # poppler reads a run of the embedded font as one word: key it by its first.
    x_of = {w.split()[0]: x for x, _, w in found if w.strip()}
    # Step labels start in one column whether the actor before them is Latin or Chinese.
    assert x_of["Face"] == pytest.approx(x_of["同意合同条款"], abs=0.5)
    assert x_of["Consent"] == pytest.approx(x_of["同意合同条款"], abs=0.5)
    # So do the values after the labels.
    assert x_of["上海市浦东新区"] == pytest.approx(x_of["tx-cjk"], abs=0.5)
    assert "officer.jones" in x_of, "an actor of 13 characters fills its column, uncut"
    # The font is embedded (a subset), not asked of the viewer's machine.
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
    line = next(x for x in fonts.splitlines() if "WenQuanYi" in x)
    assert re.search(r"CID TrueType\s+Identity-H\s+yes\s+yes\s+yes", line), line


def test_the_visible_signature_names_the_signer_in_chinese(signed_cjk: SignedPdf) -> None:
    reader = PdfFileReader(io.BytesIO(signed_cjk.pdf))
    field = next(
        f for f in reader.root["/AcroForm"]["/Fields"] if f.get_object()["/T"] == "Signer"
    ).get_object()
    to_unicode = _appearance_to_unicode(field["/AP"]["/N"].get_object()).decode().upper()
    assert to_unicode, "the stamp's text is set in an embedded CID font"
    for char in NAME:
        assert f"<{ord(char):04X}>" in to_unicode, char


def test_signatures_with_chinese_names_are_valid_in_both_validators(
    signed_cjk: SignedPdf, pki: DevPki, nssdb: Path, tmp_path: Path
) -> None:
    report = validate_pdf(signed_cjk.pdf, [pki.root_cert])
    assert report.ok, report.to_text()
    path = tmp_path / "cjk.pdf"
    path.write_bytes(signed_cjk.pdf)
    entries = pdfsig(path, nssdb)
    assert [e.field for e in entries][:2] == ["Signer", "BankSeal"]
    for e in entries[:2]:
        assert e.signature_valid and e.certificate_trusted, e.text


def test_a_latin_contract_embeds_no_font(material: SigningMaterial, tmp_path: Path) -> None:
    path = tmp_path / "latin.pdf"
    path.write_bytes(sign_contract(make_pdf(), make_request(), material).pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
    assert "WenQuanYi" not in fonts and "Courier" in fonts


def test_without_a_cjk_font_the_names_print_as_question_marks_and_still_sign(
    material: SigningMaterial, pki: DevPki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(evidence_pdf, "cjk_font", lambda mono=False: None)
    monkeypatch.setattr(pdfsign, "cjk_font", lambda mono=False: None)
    signed = sign_contract(make_pdf(), chinese_request("tx-nofont"), material)  # type: ignore[arg-type]
    assert validate_pdf(signed.pdf, [pki.root_cert]).ok
    path = tmp_path / "nofont.pdf"
    path.write_bytes(signed.pdf)
    text = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", "-layout", str(path), "-"], capture_output=True, text=True
    ).stdout
    assert "??" in text and NAME not in text


def test_a_name_with_typographic_quotes_keeps_them_on_the_page_and_in_the_stamp(
    material: SigningMaterial, tmp_path: Path
) -> None:
    """U+2019 (a typographic apostrophe) is WinAnsi, which the page's Courier shows, but not
    Latin-1, which pyhanko's standard-font stamps are limited to: the stamp takes the embedded font
    rather than print another glyph."""
    name = "Siobhán O’Brien"
    base = make_request(tx="tx-quote")
    request = replace(
        base, signer=replace(base.signer, name=name), completion=replace(base.completion, signer_name=name)
    )
    signed = sign_contract(make_pdf(), request, material)
    path = tmp_path / "quote.pdf"
    path.write_bytes(signed.pdf)
    page = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", "-layout", str(path), "-"], capture_output=True, text=True
    ).stdout
    assert name in page
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
    assert "WenQuanYi" in fonts, "the stamp's font"
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    field = next(
        f for f in reader.root["/AcroForm"]["/Fields"] if f.get_object()["/T"] == "Signer"
    ).get_object()
    assert b"2019" in _appearance_to_unicode(field["/AP"]["/N"].get_object()).upper()


def _appearance_to_unicode(xobject: object) -> bytes:
    """The ToUnicode maps of every CID font an appearance (and the XObjects in it) uses."""
    out = b""
    resources = xobject.get("/Resources", {})  # type: ignore[attr-defined]
    for font in resources.get("/Font", {}).values():
        font = font.get_object()
        if font["/Subtype"] == "/Type0":
            out += font["/ToUnicode"].get_object().data
    for inner in resources.get("/XObject", {}).values():
        out += _appearance_to_unicode(inner.get_object())
    return out


def test_a_bank_with_a_chinese_name_seals_in_the_embedded_font(tmp_path: Path) -> None:
    bank = "中国示例银行"
    pki = DevPki.open(tmp_path / "pki", CRL_BASE, bank)
    tsa = LocalTsa(pki.tsa_key)
    material = SigningMaterial(
        issuing_ca=pki.issuing_ca,
        seal=pki.seal_source,
        timestamper=lambda: GuardedTimeStamper(LocalTimeStamper(tsa), "test TSA"),
        trust_roots=[pki.root_cert],
        crl_source=pki.crl_for_url,
        organization=bank,
    )
    signed = sign_contract(make_pdf(), chinese_request("tx-bank"), material)  # type: ignore[arg-type]
    assert validate_pdf(signed.pdf, [pki.root_cert]).ok
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    seal = next(
        f for f in reader.root["/AcroForm"]["/Fields"] if f.get_object()["/T"] == "BankSeal"
    ).get_object()
    to_unicode = _appearance_to_unicode(seal["/AP"]["/N"].get_object()).decode().upper()
    for char in bank:
        assert f"<{ord(char):04X}>" in to_unicode, char
