"""Development PKI created on first use in a directory: root, issuing CA, seal, TSA, CRLs.

A second open loads what is there and never regenerates: documents signed yesterday must still
chain to the same root. Creation happens in a sibling temporary directory renamed into place, so
a crash leaves either nothing or a complete PKI.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from asn1crypto import pem, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .authority import CertificateAuthority, utcnow, write_private_file
from .errors import PkiError
from .keys import InMemoryKey, InMemoryKeySource
from .x509build import CertProfile, build_certificate, make_name

CRL_NAMES = ("root", "issuing")
_FORMAT = 1


def crl_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}.crl"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return bytes(pem.armor("CERTIFICATE", cert.dump()))


@dataclass(frozen=True)
class DevPkiInfo:
    crl_base_url: str
    organization: str


def _create(directory: Path, info: DevPkiInfo) -> None:
    now = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    org = info.organization
    root_priv, issuing_priv = _new_key(), _new_key()
    root_key = InMemoryKey(root_priv)
    root_cert = build_certificate(
        subject=make_name(f"{org} Root CA", organization_name=org),
        subject_key=root_key.public_key,
        issuer=None,
        self_signing_key=root_key,
        not_before=now,
        not_after=now + timedelta(days=365 * 20),
        profile=CertProfile(ca=True, path_len=1, key_usage=frozenset({"key_cert_sign", "crl_sign"})),
    )
    root_key.with_certificate(root_cert, ())

    issuing_key = InMemoryKey(issuing_priv)
    issuing_cert = build_certificate(
        subject=make_name(f"{org} Issuing CA", organization_name=org),
        subject_key=issuing_key.public_key,
        issuer=root_key,
        not_before=now,
        not_after=now + timedelta(days=365 * 10),
        profile=CertProfile(
            ca=True,
            path_len=0,
            key_usage=frozenset({"key_cert_sign", "crl_sign"}),
            crl_urls=(crl_url(info.crl_base_url, "root"),),
        ),
    )
    issuing_key.with_certificate(issuing_cert, (root_cert,))

    def leaf(key: ec.EllipticCurvePrivateKey, cn: str, profile: CertProfile) -> x509.Certificate:
        return build_certificate(
            subject=make_name(cn, organization_name=org),
            subject_key=InMemoryKey(key).public_key,
            issuer=issuing_key,
            not_before=now,
            not_after=now + timedelta(days=365 * 5),
            profile=profile,
        )

    issuing_dp = (crl_url(info.crl_base_url, "issuing"),)
    seal_key = _new_key()
    seal_cert = leaf(
        seal_key,
        f"{org} Electronic Seal",
        CertProfile(key_usage=frozenset({"digital_signature", "non_repudiation"}), crl_urls=issuing_dp),
    )
    tsa_key = _new_key()
    tsa_cert = leaf(
        tsa_key,
        f"{org} Timestamp Authority",
        CertProfile(
            key_usage=frozenset({"digital_signature"}),
            extended_key_usage=("time_stamping",),
            eku_critical=True,  # RFC 3161 2.3: the TSA's EKU must be critical
            crl_urls=issuing_dp,
        ),
    )

    write_private_file(directory / "root.key", _key_pem(root_priv))
    write_private_file(directory / "issuing.key", _key_pem(issuing_priv))
    write_private_file(directory / "seal.key", _key_pem(seal_key))
    write_private_file(directory / "tsa.key", _key_pem(tsa_key))
    for name, cert in (
        ("root", root_cert),
        ("issuing", issuing_cert),
        ("seal", seal_cert),
        ("tsa", tsa_cert),
    ):
        (directory / f"{name}.crt").write_bytes(_cert_pem(cert))
    (directory / "ca.pem").write_bytes(_cert_pem(root_cert))
    (directory / "crl").mkdir()
    (directory / "pki.json").write_text(
        json.dumps({"format": _FORMAT, "crl_base_url": info.crl_base_url, "organization": org})
    )


def _load_key(path: Path, cert: x509.Certificate, chain: tuple[x509.Certificate, ...]) -> InMemoryKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise PkiError(f"cannot load key {path}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: expected an EC key")
    return InMemoryKey(key, cert, chain)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        _, _, der = pem.unarmor(path.read_bytes())
        return x509.Certificate.load(der)
    except (OSError, ValueError) as e:
        raise PkiError(f"cannot load certificate {path}") from e


class DevPki:
    """The development PKI; open it with ``DevPki.open(directory, crl_base_url)``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            meta = json.loads((directory / "pki.json").read_text())
        except (OSError, ValueError) as e:
            raise PkiError(f"{directory} is not a development PKI") from e
        self.info = DevPkiInfo(crl_base_url=meta["crl_base_url"], organization=meta["organization"])
        self.root_cert = _load_cert(directory / "root.crt")
        self.issuing_cert = _load_cert(directory / "issuing.crt")
        self.seal_cert = _load_cert(directory / "seal.crt")
        self.tsa_cert = _load_cert(directory / "tsa.crt")
        self.root_key = _load_key(directory / "root.key", self.root_cert, ())
        self.issuing_key = _load_key(directory / "issuing.key", self.issuing_cert, (self.root_cert,))
        self.seal_key = _load_key(directory / "seal.key", self.seal_cert, (self.issuing_cert, self.root_cert))
        self.tsa_key = _load_key(directory / "tsa.key", self.tsa_cert, (self.issuing_cert, self.root_cert))
        base = self.info.crl_base_url
        self.root_ca = CertificateAuthority(
            InMemoryKeySource(self.root_key),
            crl_url=crl_url(base, "root"),
            crl_path=directory / "crl" / "root.crl",
            crl_validity=timedelta(days=30),
        )
        self.issuing_ca = CertificateAuthority(
            InMemoryKeySource(self.issuing_key),
            crl_url=crl_url(base, "issuing"),
            crl_path=directory / "crl" / "issuing.crl",
        )
        self.seal_source = InMemoryKeySource(self.seal_key)

    @classmethod
    def open(
        cls, directory: Path | str, crl_base_url: str, organization: str = "rtc-server development"
    ) -> DevPki:
        """Load the PKI in ``directory``, creating it first if the directory does not exist.

        ``crl_base_url`` is used only at creation: certificates already issued keep naming the
        URLs they were made with (``info.crl_base_url``).
        """
        directory = Path(directory)
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".pki-", dir=directory.parent))
            try:
                os.chmod(tmp, 0o700)
                _create(tmp, DevPkiInfo(crl_base_url=crl_base_url, organization=organization))
                os.rename(tmp, directory)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                # Another process (a media worker starting alongside) won the race: use its PKI.
                if not (directory / "pki.json").exists():
                    raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return cls(directory)

    def ca_pem(self) -> bytes:
        return (self.directory / "ca.pem").read_bytes()

    def crl_der(self, name: str) -> bytes:
        """Current DER CRL for ``root`` or ``issuing`` (what the HTTP layer serves)."""
        if name == "root":
            return self.root_ca.crl_der()
        if name == "issuing":
            return self.issuing_ca.crl_der()
        raise KeyError(name)

    def crl_for_url(self, url: str) -> bytes | None:
        """A ``CrlSource``: the CRL this PKI publishes at ``url``, without going through HTTP."""
        for name in CRL_NAMES:
            if url == crl_url(self.info.crl_base_url, name):
                return self.crl_der(name)
        return None
