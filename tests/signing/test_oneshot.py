from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509 as cx509
from cryptography.x509.oid import NameOID

from signing import DevPki, KeySourceError, PkiError, SignerIdentity, issue_one_shot, verify_id_number
from signing.oneshot import id_number_hash

SALT = b"0123456789abcdef-salt"


def test_one_shot_certificate_properties(pki: DevPki) -> None:
    key = issue_one_shot(
        pki.issuing_ca, SignerIdentity("María José Núñez", "12.345.678-Z"), transaction_id="tx-9", salt=SALT
    )
    cert = cx509.load_der_x509_certificate(key.certificate.dump())
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(0) < validity <= timedelta(hours=1)
    assert cert.not_valid_before_utc <= datetime.now(UTC) < cert.not_valid_after_utc
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "María José Núñez"
    assert cert.issuer == cx509.load_der_x509_certificate(pki.issuing_cert.dump()).subject
    ku = cert.extensions.get_extension_for_class(cx509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_cert_sign and not ku.value.key_encipherment
    assert not cert.extensions.get_extension_for_class(cx509.BasicConstraints).value.ca
    dps = cert.extensions.get_extension_for_class(cx509.CRLDistributionPoints).value
    assert [n.value for dp in dps for n in dp.full_name] == [pki.issuing_ca.crl_url]
    # the ID number never appears in clear, only as the salted hash
    der = key.certificate.dump()
    for form in (b"12.345.678-Z", b"12345678Z", b"12345678"):
        assert form not in der
    serial_attr = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert (
        serial_attr
        == id_number_hash("12345678Z", SALT)
        != id_number_hash("12345678Z", b"another-salt-0000000")
    )
    assert verify_id_number(key.certificate, "12.345.678-z", SALT)  # normalised: spaces, case
    assert not verify_id_number(key.certificate, "12345679Z", SALT)


def test_key_is_single_use_and_destroyable(pki: DevPki) -> None:
    key = issue_one_shot(pki.issuing_ca, SignerIdentity("A Signer"), transaction_id="t", salt=SALT)
    key.sign_raw(b"document digest")
    with pytest.raises(KeySourceError, match="already used"):
        key.sign_raw(b"a second document")
    key.destroy()
    assert key.destroyed
    with pytest.raises(KeySourceError, match="destroyed"):
        key.sign_raw(b"x")


def test_each_transaction_gets_a_fresh_key(pki: DevPki) -> None:
    a = issue_one_shot(pki.issuing_ca, SignerIdentity("Same Person"), transaction_id="t1", salt=SALT)
    b = issue_one_shot(pki.issuing_ca, SignerIdentity("Same Person"), transaction_id="t2", salt=SALT)
    assert a.public_key.dump() != b.public_key.dump()
    assert a.certificate.serial_number != b.certificate.serial_number


@pytest.mark.parametrize(
    ("identity", "validity", "salt"),
    [
        (SignerIdentity("A"), timedelta(hours=1, seconds=1), SALT),
        (SignerIdentity("A"), timedelta(0), SALT),
        (SignerIdentity("A"), timedelta(minutes=5), b"short"),
        (SignerIdentity("   "), timedelta(minutes=5), SALT),
        (SignerIdentity("x" * 65), timedelta(minutes=5), SALT),
    ],
)
def test_bad_requests_are_refused(
    pki: DevPki, identity: SignerIdentity, validity: timedelta, salt: bytes
) -> None:
    with pytest.raises(PkiError):
        issue_one_shot(pki.issuing_ca, identity, transaction_id="t", salt=salt, validity=validity)
