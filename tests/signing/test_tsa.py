from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import parser, pem, tsp

from signing import DevPki, LocalTsa, TimestampError
from signing.tsa import DEV_TSA_POLICY


def _request(digest: bytes, md: str = "sha256", nonce: int | None = 1234, cert_req: bool = True) -> bytes:
    req: dict[str, object] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": md}, "hashed_message": digest},
        "cert_req": cert_req,
    }
    if nonce is not None:
        req["nonce"] = nonce
    return bytes(tsp.TimeStampReq(req).dump())


def _pem_bundle(*certs: object) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", c.dump()) for c in certs)  # type: ignore[attr-defined]


def test_granted_token_verifies_with_openssl(pki: DevPki, tsa: LocalTsa, tmp_path: Path) -> None:
    data = b"the signed bytes"
    resp_der = tsa.handle_tsa_request(_request(hashlib.sha256(data).digest(), nonce=987654321))
    resp = tsp.TimeStampResp.load(resp_der)
    assert resp["status"]["status"].native == "granted"
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["nonce"].native == 987654321
    assert info["policy"].native == DEV_TSA_POLICY
    (tmp_path / "resp.der").write_bytes(resp_der)
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem())
    (tmp_path / "chain.pem").write_bytes(_pem_bundle(pki.issuing_cert))
    ok = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            str(tmp_path / "resp.der"),
            "-data",
            str(tmp_path / "data.bin"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-untrusted",
            str(tmp_path / "chain.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    (tmp_path / "other.bin").write_bytes(b"different bytes")
    bad = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            str(tmp_path / "resp.der"),
            "-data",
            str(tmp_path / "other.bin"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-untrusted",
            str(tmp_path / "chain.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0


def test_certificates_only_when_asked(tsa: LocalTsa) -> None:
    resp = tsp.TimeStampResp.load(tsa.handle_tsa_request(_request(b"\x00" * 32, cert_req=False, nonce=None)))
    assert resp["status"]["status"].native == "granted"
    assert resp["time_stamp_token"]["content"]["certificates"].native is None


@pytest.mark.parametrize(
    ("der", "fail_info"),
    [
        (b"not asn.1 at all", "bad_data_format"),
        (b"\x30\x03\x02\x01\x01", "bad_data_format"),
        (_request(hashlib.md5(b"x").digest(), md="md5"), "bad_alg"),
        (_request(b"\x00" * 20), "bad_data_format"),
        (b"\x30" + b"\x82\x20\x00" + b"\x00" * 0x2000, "bad_request"),
    ],
)
def test_bad_requests_are_rejected_not_raised(tsa: LocalTsa, der: bytes, fail_info: str) -> None:
    out = tsa.handle_tsa_request(der)
    _, _, tag, _, contents, _ = parser.parse(out)
    assert tag == 16  # SEQUENCE
    # strict: the status is the only field, no token (RFC 3161: absent unless granted)
    status = tsp.PKIStatusInfo.load(contents, strict=True)
    assert status["status"].native == "rejection"
    assert fail_info in status["fail_info"].native


def test_a_certificate_without_timestamping_usage_cannot_run_a_tsa(pki: DevPki) -> None:
    with pytest.raises(TimestampError):
        LocalTsa(pki.seal_key)
