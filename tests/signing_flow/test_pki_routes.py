"""Trust endpoints: the root, the CRLs at the URLs the certificates name, the dev TSA over HTTP."""

from __future__ import annotations

import hashlib
import os

from asn1crypto import core, crl, pem, tsp, x509

from rtc_server.appkeys import SERVICES
from tests.support import Api, assert_error


async def test_ca_pem_is_public_and_is_the_dev_root(api: Api) -> None:
    resp = await api.client.get("/api/v1/pki/ca.pem")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/x-pem-file"
    _, _, der = pem.unarmor(await resp.read())
    cert = x509.Certificate.load(der)
    assert cert.self_signed == "maybe" or cert.subject == cert.issuer
    assert cert.ca


async def test_crls_are_served_where_the_certificates_point(api: Api) -> None:
    service = api.app[SERVICES].signing
    base = api.app[SERVICES].config.base_url + "/api/v1/pki/crl/"
    with service.material.seal.open() as seal:
        certs = [seal.certificate, service.issuing_ca.certificate]
    points = sorted({dp.url for cert in certs for dp in cert.crl_distribution_points})
    # The seal names the issuing CA's CRL, the issuing CA the root's: both served here.
    assert points == [base + "issuing.crl", base + "root.crl"]
    for url in points:
        resp = await api.client.get(url[len(api.app[SERVICES].config.base_url) :])
        assert resp.status == 200, url
        assert resp.headers["Content-Type"] == "application/pkix-crl"
        parsed = crl.CertificateList.load(await resp.read())
        assert parsed["tbs_cert_list"]["next_update"].native is not None
    for missing in ("/api/v1/pki/crl/nope.crl", "/api/v1/pki/crl/root.pem", "/api/v1/pki/crl/..%2Froot.crl"):
        resp = await api.client.get(missing)
        assert resp.status == 404, missing
        assert_error(await resp.json())


def _tsq(digest: bytes, nonce: int) -> bytes:
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
                "nonce": nonce,
                "cert_req": True,
            }
        ).dump()
    )


async def test_dev_tsa_over_http(api: Api) -> None:
    digest = hashlib.sha256(b"hello").digest()
    nonce = int.from_bytes(os.urandom(8), "big")
    resp = await api.client.post(
        "/api/v1/pki/tsa", data=_tsq(digest, nonce), headers={"Content-Type": "application/timestamp-query"}
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/timestamp-reply"
    reply = tsp.TimeStampResp.load(await resp.read())
    assert reply["status"]["status"].native == "granted"
    info = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["nonce"].native == nonce
    # Garbage gets an RFC 3161 rejection, not an HTTP error: that is how TSA clients expect it.
    resp = await api.client.post(
        "/api/v1/pki/tsa", data=b"\x30\x03junk", headers={"Content-Type": "application/timestamp-query"}
    )
    assert resp.status == 200
    status_info = tsp.PKIStatusInfo.load(core.Sequence.load(await resp.read())[0].dump())
    assert status_info["status"].native == "rejection"
    resp = await api.client.post("/api/v1/pki/tsa", data=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert_error(await resp.json(), "expected_tsq")
    resp = await api.client.post(
        "/api/v1/pki/tsa", data=b"\0" * 20_000, headers={"Content-Type": "application/timestamp-query"}
    )
    assert resp.status == 413
    assert_error(await resp.json())
