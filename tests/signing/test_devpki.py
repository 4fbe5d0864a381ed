from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import crl, pem, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.asymmetric import ec

from signing import DevPki, PkiError
from signing.authority import CertificateAuthority
from signing.keys import InMemoryKeySource

BASE = "https://rtc.example:8443/api/v1/pki/crl"


def _load(path: Path) -> x509.Certificate:
    _, _, der = pem.unarmor(path.read_bytes())
    return x509.Certificate.load(der)


def _crl_urls(cert: x509.Certificate) -> list[str]:
    return [
        name.native
        for dp in cert.crl_distribution_points_value or []
        for name in dp["distribution_point"].chosen
    ]


def test_first_open_creates_everything_with_private_keys_0600(tmp_path: Path) -> None:
    pki = DevPki.open(tmp_path / "data" / "pki", BASE)
    d = pki.directory
    for name in ("root", "issuing", "seal", "tsa"):
        assert stat.S_IMODE(os.stat(d / f"{name}.key").st_mode) == 0o600
        assert (d / f"{name}.crt").exists()
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert pki.ca_pem() == (d / "root.crt").read_bytes()
    assert _load(d / "ca.pem").dump() == pki.root_cert.dump()
    assert pki.root_cert.self_issued and pki.root_cert.subject == pki.root_cert.issuer
    # no leftover temporary directory from the atomic creation
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["pki"]


def test_second_open_loads_and_never_regenerates(tmp_path: Path) -> None:
    first = DevPki.open(tmp_path / "pki", BASE)
    keys_before = {p.name: p.read_bytes() for p in first.directory.glob("*.key")}
    second = DevPki.open(tmp_path / "pki", "https://other-host/crl")
    assert second.root_cert.dump() == first.root_cert.dump()
    assert {p.name: p.read_bytes() for p in second.directory.glob("*.key")} == keys_before
    # certificates keep naming the URL they were made with
    assert second.info.crl_base_url == BASE


def test_existing_directory_that_is_not_a_pki_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "root.key").write_text("half-written")
    with pytest.raises(PkiError):
        DevPki.open(tmp_path / "pki", BASE)


def test_chain_extensions_and_crl_distribution_points(pki: DevPki) -> None:
    base = pki.info.crl_base_url
    assert pki.root_cert.ca and pki.issuing_cert.ca
    assert pki.issuing_cert.issuer == pki.root_cert.subject
    assert _crl_urls(pki.issuing_cert) == [f"{base}/root.crl"]
    assert _crl_urls(pki.seal_cert) == [f"{base}/issuing.crl"]
    assert _crl_urls(pki.tsa_cert) == [f"{base}/issuing.crl"]
    assert pki.seal_cert.key_usage_value.native == {"digital_signature", "non_repudiation"}
    # RFC 3161 2.3: the TSA certificate has exactly timeStamping, marked critical
    eku = next(
        e
        for e in pki.tsa_cert["tbs_certificate"]["extensions"]
        if e["extn_id"].native == "extended_key_usage"
    )
    assert eku["critical"].native is True
    assert eku["extn_value"].native == ["time_stamping"]
    # cryptography (OpenSSL-backed parsing) agrees the chain is well-formed
    issuing = cx509.load_der_x509_certificate(pki.issuing_cert.dump())
    issuing.verify_directly_issued_by(cx509.load_der_x509_certificate(pki.root_cert.dump()))
    cx509.load_der_x509_certificate(pki.tsa_cert.dump()).verify_directly_issued_by(issuing)


def test_crls_are_signed_by_their_ca_and_served_by_url(pki: DevPki) -> None:
    for name, ca in (("root", pki.root_cert), ("issuing", pki.issuing_cert)):
        der = pki.crl_der(name)
        parsed = cx509.load_der_x509_crl(der)
        ca_key = cx509.load_der_x509_certificate(ca.dump()).public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        assert parsed.is_signature_valid(ca_key)
        assert (
            parsed.issuer.rfc4514_string()
            == cx509.load_der_x509_certificate(ca.dump()).subject.rfc4514_string()
        )
        assert pki.crl_for_url(f"{pki.info.crl_base_url}/{name}.crl") == der
    assert pki.crl_for_url("https://elsewhere.example/issuing.crl") is None
    with pytest.raises(KeyError):
        pki.crl_der("nope")


def test_crl_is_reused_while_fresh_and_refreshed_near_expiry(pki: DevPki, tmp_path: Path) -> None:
    clock = [pki.root_ca.crl().native["tbs_cert_list"]["this_update"] + timedelta(minutes=10)]
    ca = CertificateAuthority(
        InMemoryKeySource(pki.issuing_key),
        crl_url="http://x/issuing.crl",
        crl_path=tmp_path / "issuing.crl",
        crl_validity=timedelta(days=7),
        crl_refresh_before=timedelta(days=1),
        clock=lambda: clock[0],
    )
    first = ca.crl_der()
    assert ca.crl_der() == first
    assert (tmp_path / "issuing.crl").read_bytes() == first
    clock[0] += timedelta(days=6, hours=1)  # within a day of nextUpdate
    refreshed = ca.crl()
    assert refreshed.dump() != first
    old_number = crl.CertificateList.load(first)["tbs_cert_list"]["crl_extensions"][0]["extn_value"].native
    new_number = refreshed["tbs_cert_list"]["crl_extensions"][0]["extn_value"].native
    assert new_number > old_number
    assert refreshed["tbs_cert_list"]["next_update"].native > clock[0] + timedelta(days=6)
    # a restart picks up the stored CRL instead of re-signing
    again = CertificateAuthority(
        InMemoryKeySource(pki.issuing_key),
        crl_url="http://x/issuing.crl",
        crl_path=tmp_path / "issuing.crl",
        clock=lambda: clock[0],
    )
    assert again.crl_der() == refreshed.dump()


def test_concurrent_first_starts_agree_on_one_pki(tmp_path: Path) -> None:
    import threading

    results: list[DevPki] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(DevPki.open(tmp_path / "pki", BASE))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({p.root_cert.sha256 for p in results}) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["pki"]


def test_revocation_is_published_persisted_and_stops_signing(tmp_path: Path) -> None:
    from signing import (
        GuardedTimeStamper,
        LocalTimeStamper,
        LocalTsa,
        PdfSigningError,
        SigningMaterial,
        seal_pdf,
    )
    from tests.signing.helpers import make_pdf

    pki = DevPki.open(tmp_path / "pki", BASE)
    seal_serial = pki.seal_cert.serial_number
    material = SigningMaterial(
        issuing_ca=pki.issuing_ca,
        seal=pki.seal_source,
        timestamper=lambda: GuardedTimeStamper(LocalTimeStamper(LocalTsa(pki.tsa_key)), "t"),
        trust_roots=[pki.root_cert],
        crl_source=pki.crl_for_url,
    )
    assert seal_pdf(make_pdf(), material).pdf  # fine before revocation
    before = cx509.load_der_x509_crl(pki.crl_der("issuing"))
    pki.issuing_ca.revoke(seal_serial)
    listed = cx509.load_der_x509_crl(pki.crl_der("issuing"))
    number = cx509.CRLNumber
    assert listed.extensions.get_extension_for_class(number).value.crl_number > (
        before.extensions.get_extension_for_class(number).value.crl_number
    )
    assert listed.get_revoked_certificate_by_serial_number(seal_serial) is not None
    with pytest.raises(PdfSigningError):
        seal_pdf(make_pdf(), material)
    reopened = DevPki.open(tmp_path / "pki", BASE)
    assert reopened.issuing_ca.is_revoked(seal_serial)
    relisted = cx509.load_der_x509_crl(reopened.crl_der("issuing"))
    assert relisted.get_revoked_certificate_by_serial_number(seal_serial) is not None
