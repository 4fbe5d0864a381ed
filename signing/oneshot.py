"""One-shot signer certificates: one per transaction, valid at most an hour, key used once.

ETSI TS 119 432 style remote signing: identity is proven on video, the server issues a
certificate naming the signer for this transaction only, signs, and destroys the key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta

from asn1crypto import x509
from cryptography.hazmat.primitives.asymmetric import ec

from .authority import CertificateAuthority, utcnow
from .errors import PkiError
from .keys import InMemoryKey
from .x509build import CertProfile

MAX_VALIDITY = timedelta(hours=1)


@dataclass(frozen=True)
class SignerIdentity:
    name: str
    id_number: str | None = field(default=None, repr=False)
    email: str | None = None
    # The salted hash, when the caller kept only that (never the number itself) since onboarding.
    id_number_sha256: str | None = None


def id_number_hash(id_number: str, salt: bytes) -> str:
    """Salted SHA-256 of the ID number: provable with the salt, not readable without.

    Normalised to its letters and digits, upper case: "12.345.678-z" and "12345678Z" are one ID.
    """
    normalised = "".join(ch for ch in id_number if ch.isalnum()).upper().encode()
    return hashlib.sha256(salt + normalised).hexdigest()


def verify_id_number(cert: x509.Certificate, id_number: str, salt: bytes) -> bool:
    """Whether ``cert`` was issued for this ID number (the bank keeps the per-transaction salt)."""
    for rdn in cert.subject.chosen:
        for attr in rdn:
            if attr["type"].native == "serial_number":
                return hmac.compare_digest(str(attr["value"].native), id_number_hash(id_number, salt))
    return False


def _subject(identity: SignerIdentity, salt: bytes, transaction_id: str) -> x509.Name:
    name = identity.name.strip()
    if not name or len(name) > 64:
        raise PkiError("signer name must be 1 to 64 characters")
    attrs: dict[str, str] = {
        "common_name": name,
        # RFC 5280 upper bound for organizationalUnitName is 64 characters.
        "organizational_unit_name": f"Transaction {transaction_id}"[:64],
    }
    if identity.id_number:
        attrs["serial_number"] = id_number_hash(identity.id_number, salt)
    elif identity.id_number_sha256:
        attrs["serial_number"] = identity.id_number_sha256
    if identity.email:
        attrs["email_address"] = identity.email
    return x509.Name.build(attrs, use_printable=False)


def issue_one_shot(
    ca: CertificateAuthority,
    identity: SignerIdentity,
    *,
    transaction_id: str,
    salt: bytes,
    validity: timedelta = MAX_VALIDITY,
) -> InMemoryKey:
    """A fresh key and certificate for one signature; ``destroy()`` the key after use."""
    if validity > MAX_VALIDITY or validity <= timedelta(0):
        raise PkiError("one-shot validity must be positive and at most one hour")
    if len(salt) < 16:
        raise PkiError("salt must be at least 16 bytes")
    now = utcnow().replace(microsecond=0)
    # max_uses=1: a second signature with this key is refused by the key object itself.
    key = InMemoryKey(ec.generate_private_key(ec.SECP256R1()), max_uses=1)
    cert = ca.issue(
        subject=_subject(identity, salt, transaction_id),
        public_key=key.public_key,
        # Backdating by a minute absorbs clock skew without stretching validity past one hour.
        not_before=now - timedelta(minutes=1),
        not_after=now - timedelta(minutes=1) + validity,
        profile=CertProfile(
            key_usage=frozenset({"digital_signature", "non_repudiation"}),
            crl_urls=(ca.crl_url,),
        ),
    )
    key.with_certificate(cert, (ca.certificate, *ca.chain))
    return key
