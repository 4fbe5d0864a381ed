"""RFC 3161 timestamping: an in-process TSA (also servable over HTTP) and the client side.

A failing TSA is a ``TimestampError``: signing never falls back to the signer's local clock.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, tsp, x509
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper

from .errors import TimestampError
from .keys import SigningKey

TSA_CONTENT_TYPE = "application/timestamp-reply"
TSA_REQUEST_CONTENT_TYPE = "application/timestamp-query"

# A UUID-derived OID (X.667, arc 2.25) names the dev TSA policy without registering one.
DEV_TSA_POLICY = "2.25." + str(uuid.UUID("6f0f7b0e-2f3c-4a51-9d53-3c1d1c8a7e11").int)

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
MAX_REQUEST_BYTES = 4096


def _rejection(fail_info: str, text: str) -> bytes:
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({fail_info}),
        }
    )
    # asn1crypto's TimeStampResp marks timeStampToken as mandatory; RFC 3161 has it OPTIONAL
    # and absent on rejection, so the one-field SEQUENCE is encoded by hand.
    return _der_sequence(status.dump())


def _der_sequence(content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x30" + length + content


class LocalTsa:
    """A TSA signing with a key in this process (the dev PKI's TSA certificate)."""

    def __init__(
        self,
        key: SigningKey,
        *,
        policy: str = DEV_TSA_POLICY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = key
        self._policy = policy
        self._clock = clock
        eku = key.certificate.extended_key_usage_value
        if eku is None or "time_stamping" not in eku.native:
            raise TimestampError("TSA certificate lacks the timeStamping extended key usage")

    def handle_tsa_request(self, der: bytes) -> bytes:
        """Answer one DER TimeStampReq with a DER TimeStampResp (rejections included, never raises)."""
        if len(der) > MAX_REQUEST_BYTES:
            return _rejection("bad_request", "request too large")
        try:
            req = tsp.TimeStampReq.load(der, strict=True)
            imprint = req["message_imprint"]
            md = imprint["hash_algorithm"]["algorithm"].native
            digest = imprint["hashed_message"].native
            nonce = req["nonce"].native
            cert_req = bool(req["cert_req"].native)
            if req["version"].native != "v1":
                return _rejection("bad_request", "unsupported request version")
        except ValueError:
            return _rejection("bad_data_format", "malformed TimeStampReq")
        if md not in _DIGEST_SIZES:
            return _rejection("bad_alg", f"unsupported digest algorithm {md}")
        if len(digest) != _DIGEST_SIZES[md]:
            return _rejection("bad_data_format", "message imprint has the wrong length")
        if req["req_policy"].native not in (None, self._policy):
            return _rejection("unaccepted_policy", "unsupported policy")
        if req["extensions"].native:
            return _rejection("unaccepted_extension", "extensions are not supported")
        token = self._token(imprint, nonce, cert_req)
        status = tsp.PKIStatusInfo({"status": "granted"})
        return bytes(tsp.TimeStampResp({"status": status, "time_stamp_token": token}).dump())

    def _token(self, imprint: tsp.MessageImprint, nonce: int | None, cert_req: bool) -> cms.ContentInfo:
        now = self._clock()
        cert = self._key.certificate
        info: dict[str, object] = {
            "version": "v1",
            "policy": self._policy,
            "message_imprint": imprint,
            "serial_number": secrets.randbits(127),
            "gen_time": now,
            "accuracy": {"seconds": 1},
            "ordering": False,
            "tsa": x509.GeneralName(name="directory_name", value=cert.subject),
        }
        if nonce is not None:
            info["nonce"] = nonce
        tst_info = tsp.TSTInfo(info).dump()
        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(now)})),
                simple_cms_attribute("message_digest", hashlib.sha256(tst_info).digest()),
                simple_cms_attribute("signing_certificate_v2", as_signing_certificate_v2(cert, "sha512")),
            ]
        )
        sig_algo = self._key.signature_algorithm()
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={"issuer": cert.issuer, "serial_number": cert.serial_number},
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": _cms_signature_algorithm(sig_algo),
                "signature": self._key.sign_raw(signed_attrs.dump()),
            }
        )
        signed_data: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": cms.ParsableOctetString(tst_info),
            },
            "signer_infos": [signer_info],
        }
        if cert_req:
            signed_data["certificates"] = [cert, *self._key.chain]
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})


def _cms_signature_algorithm(sig_algo: algos.SignedDigestAlgorithm) -> algos.SignedDigestAlgorithm:
    # In SignerInfo the digest is named separately; RSA is then plain rsassa_pkcs1v15.
    if sig_algo["algorithm"].native == "sha256_rsa":
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    return sig_algo


class LocalTimeStamper(TimeStamper):
    """pyhanko client for a ``LocalTsa`` (no HTTP round trip)."""

    def __init__(self, tsa: LocalTsa) -> None:
        super().__init__()
        self._tsa = tsa

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return tsp.TimeStampResp.load(self._tsa.handle_tsa_request(req.dump()))


@dataclass(frozen=True)
class HttpTsaConfig:
    """An external RFC 3161 TSA."""

    url: str
    timeout_s: float = 10.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def http_timestamper(config: HttpTsaConfig) -> TimeStamper:
    auth = (config.username, config.password or "") if config.username else None
    return HTTPTimeStamper(config.url, timeout=config.timeout_s, auth=auth)


class GuardedTimeStamper(TimeStamper):
    """Wraps any TimeStamper so every failure surfaces as ``TimestampError``."""

    def __init__(self, inner: TimeStamper, name: str) -> None:
        super().__init__()
        self._inner = inner
        self._name = name

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        try:
            return await self._inner.async_request_tsa_response(req)
        except TimestampError:
            raise
        except Exception as e:
            raise TimestampError(f"timestamp authority {self._name} failed: {e}") from e

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        try:
            return await super().async_timestamp(message_digest, md_algorithm)
        except TimestampError:
            raise
        except Exception as e:
            raise TimestampError(f"timestamp authority {self._name} failed: {e}") from e
