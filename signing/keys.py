"""Private keys behind one small interface: in memory, in a PKCS#12 file, or on a PKCS#11 token.

Everything that signs (certificates, CRLs, timestamp tokens, PDF signatures) goes through
``SigningKey``, so the dev PKI, a PKCS#12 file and an HSM are interchangeable in config.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import algos, keys, pem, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .errors import KeySourceError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class RawKey(Protocol):
    """Enough of a key to sign bytes (all the PKI needs to self-sign a root)."""

    @property
    def public_key(self) -> keys.PublicKeyInfo: ...

    def signature_algorithm(self) -> algos.SignedDigestAlgorithm: ...

    def sign_raw(self, data: bytes) -> bytes:
        """Sign ``data`` with SHA-256 and the key's natural scheme (ECDSA or RSA PKCS#1 v1.5)."""
        ...


class SigningKey(RawKey, Protocol):
    """A key with its certificate and chain (leaf first excluded, issuers up to the root)."""

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def chain(self) -> tuple[x509.Certificate, ...]: ...

    def pdf_signer(self) -> Signer:
        """A pyhanko signer over the same key (signature creation for PDFs)."""
        ...


class KeySource(Protocol):
    """Opens a key for the duration of a ``with`` block (a PKCS#11 session, a decrypted file...)."""

    def open(self) -> contextlib.AbstractContextManager[SigningKey]: ...


def _algo_for(public_key: keys.PublicKeyInfo) -> algos.SignedDigestAlgorithm:
    algo = public_key.algorithm
    if algo == "ec":
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    if algo == "rsa":
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    raise KeySourceError(f"unsupported key algorithm {algo!r}: use EC or RSA")


def public_key_info(key: PrivateKey) -> keys.PublicKeyInfo:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keys.PublicKeyInfo.load(der)


def to_asn1_cert(cert: Any) -> x509.Certificate:
    """Accept a cryptography certificate, DER or PEM bytes, or an asn1crypto certificate."""
    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, bytes):
        if pem.detect(cert):
            _, _, cert = pem.unarmor(cert)
        return x509.Certificate.load(cert)
    return x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def load_certs(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle or a single DER file."""
    data = path.read_bytes()
    if pem.detect(data):
        return [x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [x509.Certificate.load(data)]


class _DelegatingPdfSigner(Signer):
    """pyhanko ``Signer`` over any ``SigningKey``; the key bytes never pass through asn1crypto."""

    def __init__(self, key: SigningKey) -> None:
        registry = SimpleCertificateStore()
        registry.register_multiple(key.chain)
        super().__init__(signing_cert=key.certificate, cert_registry=registry, embed_roots=True)
        self._key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != "sha256":
            raise KeySourceError(f"only sha256 is supported, not {digest_algorithm}")
        if dry_run:
            # Size estimate only: a placeholder keeps a one-shot key to a single real use.
            return b"\x00" * _max_signature_size(self._key.public_key)
        return self._key.sign_raw(data)


def _max_signature_size(public_key: keys.PublicKeyInfo) -> int:
    if public_key.algorithm == "rsa":
        return (public_key.bit_size + 7) // 8
    coord = (public_key.bit_size + 7) // 8
    return 2 * coord + 9  # DER SEQUENCE of two INTEGERs, each possibly with a sign byte


class InMemoryKey:
    """A private key held by cryptography (dev PKI, PKCS#12, one-shot keys)."""

    def __init__(
        self,
        private_key: PrivateKey,
        certificate: x509.Certificate | None = None,
        chain: Sequence[x509.Certificate] = (),
        *,
        max_uses: int | None = None,
    ) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeySourceError("unsupported key type: use EC or RSA")
        self._private_key: PrivateKey | None = private_key
        self._public_key = public_key_info(private_key)
        self._certificate = certificate
        self._chain = tuple(chain)
        self._uses_left = max_uses

    @property
    def public_key(self) -> keys.PublicKeyInfo:
        return self._public_key

    @property
    def certificate(self) -> x509.Certificate:
        if self._certificate is None:
            raise KeySourceError("key has no certificate yet")
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def with_certificate(self, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
        self._certificate = certificate
        self._chain = tuple(chain)

    def signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        return _algo_for(self._public_key)

    def sign_raw(self, data: bytes) -> bytes:
        key = self._private_key
        if key is None:
            raise KeySourceError("key was destroyed")
        if self._uses_left is not None:
            if self._uses_left <= 0:
                raise KeySourceError("single-use key already used")
            self._uses_left -= 1
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def pdf_signer(self) -> Signer:
        return _DelegatingPdfSigner(self)

    def destroy(self) -> None:
        """Drop the only reference to the key object.

        OpenSSL frees (and clears) the key when the Python object is collected; CPython's
        reference counting makes that immediate unless something else still holds it. Python
        offers no way to scrub memory deterministically, which is the documented limit here.
        """
        self._private_key = None

    @property
    def destroyed(self) -> bool:
        return self._private_key is None


@dataclass(frozen=True)
class Pkcs12KeyConfig:
    """A PKCS#12 (.p12/.pfx) file holding the key, its certificate and usually its chain."""

    path: Path
    passphrase: str | None = field(default=None, repr=False)
    chain_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Pkcs11KeyConfig:
    """A key on a PKCS#11 token; the certificate comes from ``cert_path`` or the token."""

    module_path: Path
    token_label: str
    key_label: str
    pin: str = field(repr=False)
    cert_path: Path | None = None
    cert_label: str | None = None
    chain_paths: tuple[Path, ...] = ()


KeySourceConfig = Pkcs12KeyConfig | Pkcs11KeyConfig


class InMemoryKeySource:
    def __init__(self, key: InMemoryKey) -> None:
        self._key = key

    @contextlib.contextmanager
    def open(self) -> Iterator[SigningKey]:
        yield self._key


class Pkcs12KeySource:
    def __init__(self, config: Pkcs12KeyConfig) -> None:
        self.config = config

    @contextlib.contextmanager
    def open(self) -> Iterator[SigningKey]:
        cfg = self.config
        try:
            data = cfg.path.read_bytes()
        except OSError as e:
            raise KeySourceError(f"cannot read PKCS#12 file {cfg.path}: {e.strerror}") from e
        password = cfg.passphrase.encode() if cfg.passphrase is not None else None
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError as e:
            raise KeySourceError(f"cannot open PKCS#12 file {cfg.path} (wrong passphrase?)") from e
        if key is None or cert is None:
            raise KeySourceError(f"PKCS#12 file {cfg.path} lacks a key or certificate")
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeySourceError(f"PKCS#12 file {cfg.path}: unsupported key type")
        chain = [to_asn1_cert(c) for c in extra]
        for p in cfg.chain_paths:
            chain.extend(load_certs(p))
        mem = InMemoryKey(key, to_asn1_cert(cert), chain)
        try:
            yield mem
        finally:
            mem.destroy()


class Pkcs11Key:
    """A private key handle inside an open PKCS#11 session."""

    def __init__(
        self,
        session: Any,
        key_handle: Any,
        key_label: str,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
    ) -> None:
        self._session = session
        self._key = key_handle
        self._key_label = key_label
        self._certificate = certificate
        self._chain = tuple(chain)

    @property
    def public_key(self) -> keys.PublicKeyInfo:
        return self._certificate.public_key

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        return _algo_for(self.public_key)

    def sign_raw(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism, PKCS11Error

        try:
            if self.public_key.algorithm == "ec":
                # Hash here and use plain CKM_ECDSA: not every token offers CKM_ECDSA_SHA256.
                raw = self._key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
                return bytes(algos.DSASignature.from_p1363(raw).dump())
            return bytes(self._key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
        except PKCS11Error as e:
            raise KeySourceError(f"PKCS#11 signing failed: {type(e).__name__}") from e

    def pdf_signer(self) -> Signer:
        return _DelegatingPdfSigner(self)


class Pkcs11KeySource:
    def __init__(self, config: Pkcs11KeyConfig) -> None:
        self.config = config

    @contextlib.contextmanager
    def open(self) -> Iterator[SigningKey]:
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        cfg = self.config
        try:
            lib = pkcs11.lib(str(cfg.module_path))
            token = lib.get_token(token_label=cfg.token_label)
            session = token.open(user_pin=cfg.pin)
        except (pkcs11.PKCS11Error, RuntimeError) as e:
            raise KeySourceError(
                f"cannot open PKCS#11 token {cfg.token_label!r} via {cfg.module_path}: {type(e).__name__}"
            ) from e
        try:
            try:
                handle = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=cfg.key_label)
            except pkcs11.PKCS11Error as e:
                raise KeySourceError(f"no private key labelled {cfg.key_label!r} on the token") from e
            if cfg.cert_path is not None:
                cert = load_certs(cfg.cert_path)[0]
            else:
                label = cfg.cert_label or cfg.key_label
                found = list(
                    session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label})
                )
                if not found:
                    raise KeySourceError(f"no certificate labelled {label!r} on the token")
                cert = x509.Certificate.load(bytes(found[0][Attribute.VALUE]))
            chain: list[x509.Certificate] = []
            for p in cfg.chain_paths:
                chain.extend(load_certs(p))
            yield Pkcs11Key(session, handle, cfg.key_label, cert, chain)
        finally:
            session.close()


def key_source_from_config(config: KeySourceConfig) -> KeySource:
    if isinstance(config, Pkcs12KeyConfig):
        return Pkcs12KeySource(config)
    return Pkcs11KeySource(config)
