"""Certificates and CRLs built with asn1crypto and signed through a ``SigningKey``.

cryptography's builders need a private key object in memory; the issuing CA may live on a PKCS#11
token, so everything the PKI signs goes through ``SigningKey.sign_raw`` instead.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import crl, keys, x509

from .keys import SigningKey


def random_serial() -> int:
    # RFC 5280: positive, at most 20 octets; 159 random bits keep the top bit clear.
    return secrets.randbits(159) | 1


def asn1_time(dt: datetime) -> x509.Time:
    # RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime after.
    if dt.year < 2050:
        return x509.Time({"utc_time": dt})
    return x509.Time({"general_time": dt})


def key_identifier(public_key: keys.PublicKeyInfo) -> bytes:
    return hashlib.sha1(public_key["public_key"].contents).digest()


def make_name(common_name: str, **attrs: str) -> x509.Name:
    values: dict[str, str] = dict(attrs)
    values["common_name"] = common_name
    return x509.Name.build(values, use_printable=False)


def crl_distribution_points(urls: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "distribution_point": x509.DistributionPointName(
                name="full_name",
                value=[x509.GeneralName(name="uniform_resource_identifier", value=url)],
            )
        }
        for url in urls
    ]


@dataclass(frozen=True)
class CertProfile:
    """What kind of certificate to issue; the extensions follow from it."""

    ca: bool = False
    path_len: int | None = None
    key_usage: frozenset[str] = frozenset({"digital_signature", "non_repudiation"})
    extended_key_usage: tuple[str, ...] = ()
    eku_critical: bool = False
    crl_urls: tuple[str, ...] = ()


def _extensions(
    profile: CertProfile, subject_key: keys.PublicKeyInfo, issuer_key: keys.PublicKeyInfo
) -> list[dict[str, Any]]:
    exts: list[dict[str, Any]] = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": profile.ca, "path_len_constraint": profile.path_len}
            if profile.ca
            else {"ca": False},
        },
        {"extn_id": "key_usage", "critical": True, "extn_value": set(profile.key_usage)},
        {"extn_id": "key_identifier", "critical": False, "extn_value": key_identifier(subject_key)},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": key_identifier(issuer_key)},
        },
    ]
    if profile.extended_key_usage:
        exts.append(
            {
                "extn_id": "extended_key_usage",
                "critical": profile.eku_critical,
                "extn_value": list(profile.extended_key_usage),
            }
        )
    if profile.crl_urls:
        exts.append(
            {
                "extn_id": "crl_distribution_points",
                "critical": False,
                "extn_value": crl_distribution_points(profile.crl_urls),
            }
        )
    return exts


def build_certificate(
    *,
    subject: x509.Name,
    subject_key: keys.PublicKeyInfo,
    issuer: SigningKey | None,
    self_signing_key: SigningKey | None = None,
    not_before: datetime,
    not_after: datetime,
    profile: CertProfile,
    serial: int | None = None,
) -> x509.Certificate:
    """Issue a certificate; ``issuer`` None with ``self_signing_key`` makes a self-signed root."""
    if issuer is not None:
        signer = issuer
        issuer_name = issuer.certificate.subject
        issuer_pub = issuer.certificate.public_key
    elif self_signing_key is not None:
        signer = self_signing_key
        issuer_name = subject
        issuer_pub = subject_key
    else:
        raise ValueError("need an issuer or a self-signing key")
    sig_algo = signer.signature_algorithm()
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial if serial is not None else random_serial(),
            "signature": sig_algo,
            "issuer": issuer_name,
            "validity": {"not_before": asn1_time(not_before), "not_after": asn1_time(not_after)},
            "subject": subject,
            "subject_public_key_info": subject_key,
            "extensions": _extensions(profile, subject_key, issuer_pub),
        }
    )
    signature = signer.sign_raw(tbs.dump())
    built = x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": sig_algo, "signature_value": signature}
    )
    # Re-parse: a dict-constructed asn1crypto tree can be pathologically slow to re-serialise
    # inside a CMS structure (seconds, measured); a parsed one reuses its DER.
    return x509.Certificate.load(built.dump())


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime


def build_crl(
    *,
    issuer: SigningKey,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: Iterable[RevokedEntry] = (),
) -> crl.CertificateList:
    sig_algo = issuer.signature_algorithm()
    tbs: dict[str, Any] = {
        "version": "v2",
        "signature": sig_algo,
        "issuer": issuer.certificate.subject,
        "this_update": asn1_time(this_update),
        "next_update": asn1_time(next_update),
        "crl_extensions": [
            {"extn_id": "crl_number", "critical": False, "extn_value": number},
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": key_identifier(issuer.certificate.public_key)},
            },
        ],
    }
    entries = [{"user_certificate": e.serial, "revocation_date": asn1_time(e.revoked_at)} for e in revoked]
    # RFC 5280 5.1.2.6: omit the list when empty rather than emit an empty SEQUENCE.
    if entries:
        tbs["revoked_certificates"] = entries
    tbs_obj = crl.TbsCertList(tbs)
    signature = issuer.sign_raw(tbs_obj.dump())
    built = crl.CertificateList(
        {"tbs_cert_list": tbs_obj, "signature_algorithm": sig_algo, "signature": signature}
    )
    return crl.CertificateList.load(built.dump())
