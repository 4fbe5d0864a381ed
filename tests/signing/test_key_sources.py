"""Production key sources: a PKCS#12 file and a PKCS#11 token (SoftHSM2), for seal and issuing CA."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import pem, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from signing import (
    CertificateAuthority,
    DevPki,
    GuardedTimeStamper,
    HttpCrlSource,
    InMemoryKey,
    KeySourceError,
    LocalTimeStamper,
    LocalTsa,
    Pkcs11KeyConfig,
    Pkcs11KeySource,
    Pkcs12KeyConfig,
    Pkcs12KeySource,
    SigningConfig,
    SigningMaterial,
    SigningService,
    sign_contract,
    validate_pdf,
)
from signing.authority import utcnow
from signing.keys import InMemoryKeySource, public_key_info
from signing.revocation import combine_sources
from signing.x509build import CertProfile, make_name
from tests.signing.helpers import make_pdf, make_request, pdfsig

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN, PIN, SO_PIN = "rtc-test", "1234", "5678"


def _issue(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, cn: str, profile: CertProfile
) -> x509.Certificate:
    now = utcnow().replace(microsecond=0)
    return ca.issue(
        subject=make_name(cn, organization_name="Example Bank"),
        public_key=public_key_info(key),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=30),
        profile=profile,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return bytes(pem.armor("CERTIFICATE", cert.dump()))


def _seal_profile(pki: DevPki) -> CertProfile:
    return CertProfile(crl_urls=(pki.issuing_ca.crl_url,))


def test_pkcs12_seal_signs_a_contract_that_validates(
    material: SigningMaterial, pki: DevPki, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(pki.issuing_ca, key, "Example Bank Seal (PKCS#12)", _seal_profile(pki))
    p12 = pkcs12.serialize_key_and_certificates(
        b"seal",
        key,
        cx509.load_der_x509_certificate(cert.dump()),
        [cx509.load_der_x509_certificate(c.dump()) for c in (pki.issuing_cert, pki.root_cert)],
        serialization.BestAvailableEncryption(b"p12 passphrase"),
    )
    (tmp_path / "seal.p12").write_bytes(p12)
    source = Pkcs12KeySource(Pkcs12KeyConfig(tmp_path / "seal.p12", "p12 passphrase"))
    out = sign_contract(make_pdf(), make_request(), SigningMaterial(**{**material.__dict__, "seal": source}))
    report = validate_pdf(out.pdf, [pki.root_cert])
    assert report.ok, report.to_text()
    assert "Seal (PKCS#12)" in report.signatures[1].signer
    assert "p12 passphrase" not in repr(source.config)  # secrets stay out of logs

    with pytest.raises(KeySourceError, match="wrong passphrase"):
        with Pkcs12KeySource(Pkcs12KeyConfig(tmp_path / "seal.p12", "wrong")).open():
            pass
    with pytest.raises(KeySourceError, match="cannot read"):
        with Pkcs12KeySource(Pkcs12KeyConfig(tmp_path / "missing.p12", "x")).open():
            pass


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SoftHSM2 token in a private directory (SOFTHSM2_CONF is read when the module loads)."""
    if not SOFTHSM_MODULE.exists():
        pytest.fail("softhsm2 is not installed (apt-get install softhsm2)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    _softhsm_util("--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN)
    return root


def _softhsm_util(*args: str) -> None:
    res = subprocess.run(["softhsm2-util", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"softhsm2-util {args[0]} failed: {res.stdout} {res.stderr}"


def _import_key(softhsm: Path, key: ec.EllipticCurvePrivateKey, label: str, key_id: str) -> None:
    path = softhsm / f"{label}.key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    subprocess.run(
        [
            "softhsm2-util",
            "--import",
            str(path),
            "--token",
            TOKEN,
            "--label",
            label,
            "--id",
            key_id,
            "--pin",
            PIN,
        ],
        check=True,
        capture_output=True,
    )
    path.unlink()  # the token holds the only copy from now on


HSM_CRL_BASE = "http://127.0.0.1:9/crl"  # where the service under test would publish its issuing CRL


@dataclass(frozen=True)
class Hsm:
    dir: Path
    ca: Pkcs11KeyConfig
    seal: Pkcs11KeyConfig
    root_crl_url: str


@pytest.fixture(scope="module")
def hsm(softhsm: Path, pki: DevPki) -> Iterator[Hsm]:
    """Issuing CA and seal keys on the token; the root CRL is published over real HTTP, as a
    production root operated elsewhere would be (so the HTTP CRL fetcher is exercised)."""
    root_crl = pki.crl_der("root")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/root.crl"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/pkix-crl")
            self.end_headers()
            if ok:
                self.wfile.write(root_crl)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root_crl_url = f"http://127.0.0.1:{server.server_address[1]}/root.crl"

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(
        pki.root_ca,
        ca_key,
        "Example Bank HSM Issuing CA",
        CertProfile(
            ca=True, path_len=0, key_usage=frozenset({"key_cert_sign", "crl_sign"}), crl_urls=(root_crl_url,)
        ),
    )
    (softhsm / "hsm-ca.pem").write_bytes(_pem(ca_cert))
    (softhsm / "root.pem").write_bytes(pki.ca_pem())
    _import_key(softhsm, ca_key, "hsm-issuing", "01")
    seal_key = ec.generate_private_key(ec.SECP256R1())
    seal_cert = _issue(
        CertificateAuthority(
            InMemoryKeySource(InMemoryKey(ca_key, ca_cert, (pki.root_cert,))), crl_url="unused"
        ),
        seal_key,
        "Example Bank HSM Seal",
        CertProfile(crl_urls=(f"{HSM_CRL_BASE}/bank-issuing.crl",)),
    )
    (softhsm / "hsm-seal.pem").write_bytes(_pem(seal_cert))
    _import_key(softhsm, seal_key, "hsm-seal", "02")
    del ca_key, seal_key
    yield Hsm(
        dir=softhsm,
        ca=Pkcs11KeyConfig(
            SOFTHSM_MODULE,
            TOKEN,
            "hsm-issuing",
            PIN,
            cert_path=softhsm / "hsm-ca.pem",
            chain_paths=(softhsm / "root.pem",),
        ),
        seal=Pkcs11KeyConfig(
            SOFTHSM_MODULE,
            TOKEN,
            "hsm-seal",
            PIN,
            cert_path=softhsm / "hsm-seal.pem",
            chain_paths=(softhsm / "hsm-ca.pem", softhsm / "root.pem"),
        ),
        root_crl_url=root_crl_url,
    )
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_softhsm_issuing_ca_and_seal_sign_a_contract_that_validates(
    hsm: Hsm, pki: DevPki, nssdb: Path, tmp_path: Path
) -> None:
    assert PIN not in repr(hsm.seal)
    hsm_ca = CertificateAuthority(
        Pkcs11KeySource(hsm.ca), crl_url=f"{HSM_CRL_BASE}/bank-issuing.crl", crl_path=tmp_path / "hsm.crl"
    )
    material = SigningMaterial(
        issuing_ca=hsm_ca,
        seal=Pkcs11KeySource(hsm.seal),
        timestamper=lambda: _dev_timestamper(pki),
        trust_roots=[pki.root_cert],
        crl_source=combine_sources(
            lambda url: hsm_ca.crl_der() if url == hsm_ca.crl_url else None, pki.crl_for_url, HttpCrlSource()
        ),
    )
    out = sign_contract(make_pdf(), make_request(), material)
    report = validate_pdf(out.pdf, [pki.root_cert])
    assert report.ok, report.to_text()
    signer_cert = cx509.load_der_x509_certificate(out.signer_certificate or b"")
    assert "HSM Issuing CA" in signer_cert.issuer.rfc4514_string()  # one-shot issued by the token's key
    assert "HSM Seal" in report.signatures[1].signer
    # the CRL the token signed verifies against the CA certificate
    hsm_ca_key = cx509.load_der_x509_certificate(hsm_ca.certificate.dump()).public_key()
    assert isinstance(hsm_ca_key, ec.EllipticCurvePublicKey)
    assert cx509.load_der_x509_crl(hsm_ca.crl_der()).is_signature_valid(hsm_ca_key)
    (tmp_path / "hsm.pdf").write_bytes(out.pdf)
    for entry in pdfsig(tmp_path / "hsm.pdf", nssdb)[:2]:
        assert entry.signature_valid and entry.certificate_trusted, entry.text


@pytest.mark.slow
def test_softhsm_errors_are_typed(hsm: Hsm) -> None:
    with pytest.raises(KeySourceError):
        with Pkcs11KeySource(replace(hsm.seal, pin="0000")).open():
            pass
    with pytest.raises(KeySourceError, match="no private key"):
        with Pkcs11KeySource(replace(hsm.seal, key_label="absent")).open():
            pass
    with pytest.raises(KeySourceError):
        with Pkcs11KeySource(replace(hsm.seal, token_label="no-such-token")).open():
            pass


@pytest.mark.slow
def test_signing_service_with_production_config_on_softhsm(hsm: Hsm, pki: DevPki, tmp_path: Path) -> None:
    """Config path: issuing CA and seal on the token, dev TSA, foreign root CRL over HTTP."""
    config = SigningConfig(
        crl_base_url=HSM_CRL_BASE,
        # the dev PKI created for the TSA must not share CA names with the session PKI:
        # CRLs are matched to CAs by issuer name
        organization="Example Bank Service",
        issuing_ca=hsm.ca,
        seal=hsm.seal,
        trust_roots=(hsm.dir / "root.pem",),
        fetch_foreign_crls=True,
    )
    service = SigningService(tmp_path / "data", config)
    assert pki.ca_pem() in service.ca_pem()
    # root and issuing: the dev PKI that still runs the TSA here
    assert service.crl_names() == ("root", "issuing", "bank-issuing")
    crl_obj = cx509.load_der_x509_crl(service.crl_der("bank-issuing"))
    assert "HSM Issuing CA" in crl_obj.issuer.rfc4514_string()
    out = service.sign_contract(make_pdf(), make_request())
    report = service.validate(out.pdf)
    assert report.ok, report.to_text()
    assert "HSM Seal" in report.signatures[1].signer


def _dev_timestamper(pki: DevPki) -> GuardedTimeStamper:
    return GuardedTimeStamper(LocalTimeStamper(LocalTsa(pki.tsa_key)), "dev TSA")
