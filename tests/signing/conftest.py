"""One development PKI per test session: creating keys is cheap, but signing tests share it."""

from __future__ import annotations

from pathlib import Path

import pytest

from signing import DevPki, GuardedTimeStamper, LocalTimeStamper, LocalTsa, SigningMaterial
from tests.signing.helpers import make_nss_db

CRL_BASE = "http://127.0.0.1:9/api/v1/pki/crl"  # nothing listens there: CRLs must come from the PKI object


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.open(tmp_path_factory.mktemp("data") / "pki", CRL_BASE, "Example Bank")


@pytest.fixture(scope="session")
def tsa(pki: DevPki) -> LocalTsa:
    return LocalTsa(pki.tsa_key)


@pytest.fixture(scope="session")
def material(pki: DevPki, tsa: LocalTsa) -> SigningMaterial:
    return SigningMaterial(
        issuing_ca=pki.issuing_ca,
        seal=pki.seal_source,
        timestamper=lambda: GuardedTimeStamper(LocalTimeStamper(tsa), "test TSA"),
        trust_roots=[pki.root_cert],
        crl_source=pki.crl_for_url,
        organization="Example Bank",
    )


@pytest.fixture(scope="session")
def nssdb(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_nss_db(tmp_path_factory.mktemp("nss"), pki.ca_pem())
