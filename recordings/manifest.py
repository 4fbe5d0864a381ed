"""Signed, canonical manifest of one track: the segment list, the chain head and the key.

manifest.json = JCS({"signed": {...}, "signature": {"alg", "value"}, "timestamp_token": b64|null})

`signature` is over JCS(signed): Ed25519, or ECDSA P-256 with SHA-256 (DER, "ES256-DER").
`signed.public_key` carries the signer's SubjectPublicKeyInfo so anyone can verify offline,
`signed.certificates` the optional PEM chain (leaf first). The RFC 3161 token, when present,
timestamps the chain head itself (messageImprint = SHA-256 / chain head bytes); it stays outside
the signed part because it is self-authenticating and may be added after sealing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .chain import canonical_json, chain_head
from .errors import ManifestError
from .journal import fsync_dir
from .model import MANIFEST_FORMAT, MANIFEST_NAME, DroppedSegment, SegmentEntry

log = logging.getLogger(__name__)

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
VerifyKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
# Given the 32-byte chain head (used as the SHA-256 message imprint), returns a DER
# TimeStampToken (CMS ContentInfo) from an RFC 3161 TSA. Called on the writer's thread, so it
# may block (HTTP to the TSA); if it raises, the manifest is sealed without a token.
Timestamper = Callable[[bytes], bytes]


def key_fingerprint(key: VerifyKey) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _alg(key: SigningKey | VerifyKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256-DER"
    raise ManifestError("manifest keys must be Ed25519 or ECDSA P-256")


@dataclass(frozen=True)
class ManifestSigner:
    """The server's manifest key, optional certificate chain (leaf first) and TSA hook."""

    private_key: SigningKey
    certificates: Sequence[x509.Certificate] = ()
    timestamper: Timestamper | None = None

    def __post_init__(self) -> None:
        _alg(self.private_key)
        if self.certificates:
            leaf_key = self.certificates[0].public_key()
            if key_fingerprint(leaf_key) != key_fingerprint(self.private_key.public_key()):  # type: ignore[arg-type]
                raise ManifestError("first certificate does not belong to the signing key")

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(data)
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key_json(self) -> dict[str, str]:
        public = self.private_key.public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        return {"alg": _alg(self.private_key), "spki_pem": pem, "fingerprint_sha256": key_fingerprint(public)}

    def certificates_pem(self) -> list[str]:
        return [c.public_bytes(serialization.Encoding.PEM).decode() for c in self.certificates]


def verify_signature(public_key: VerifyKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def load_public_key(pem: str) -> VerifyKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise ManifestError("manifest key must be Ed25519 or ECDSA")
    _alg(key)
    return key


def build_manifest(
    track: dict[str, Any],
    segments: Sequence[SegmentEntry],
    dropped: Sequence[DroppedSegment],
    end_reason: str,
    signer: ManifestSigner,
) -> dict[str, Any]:
    head = chain_head(segments)
    key_json = signer.public_key_json()
    signed: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "track": track,
        "segments": [s.to_json() for s in segments],
        "segment_count": len(segments),
        "dropped": [d.to_json() for d in dropped],
        "chain_head": head.hex(),
        "end_reason": end_reason,
        "sealed_at_us": time.time_ns() // 1000,
        "public_key": key_json,
        "certificates": signer.certificates_pem(),
    }
    signature = signer.sign(canonical_json(signed))
    token = None
    if signer.timestamper is not None:
        try:
            token = signer.timestamper(head)
        except Exception as exc:
            # A TSA outage must not leave a recording unsealed; the manifest says it is unstamped.
            log.warning("chain head not timestamped: %s", exc)
    return {
        "signed": signed,
        "signature": {"alg": key_json["alg"], "value": base64.b64encode(signature).decode()},
        "timestamp_token": base64.b64encode(token).decode() if token else None,
    }


def write_manifest(track_dir: Path, manifest: dict[str, Any], *, fsync: bool = True) -> Path:
    """Atomically (write, fsync, rename) store the manifest in the track folder."""
    path = track_dir / MANIFEST_NAME
    tmp = track_dir / (MANIFEST_NAME + ".tmp")
    with tmp.open("wb") as stream:
        stream.write(canonical_json(manifest))
        stream.flush()
        if fsync:
            os.fsync(stream.fileno())
    tmp.replace(path)
    if fsync:
        fsync_dir(track_dir)
    return path


def parse_manifest(raw: bytes) -> dict[str, Any]:
    """Parse and shape-check a manifest; ManifestError when it is not one of ours."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("signed"), dict):
        raise ManifestError("manifest has no signed part")
    if data["signed"].get("format") != MANIFEST_FORMAT:
        raise ManifestError("unknown manifest format")
    return data


def timestamp_imprint(token_der: bytes) -> tuple[str, bytes]:
    """(hash algorithm, hashed message) of an RFC 3161 TimeStampToken."""
    from asn1crypto import cms, tsp

    info = cms.ContentInfo.load(token_der)
    if info["content_type"].native != "signed_data":
        raise ManifestError("timestamp token is not CMS SignedData")
    encap = info["content"]["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise ManifestError("timestamp token does not carry TSTInfo")
    content = encap["content"]
    tst = content.parsed if isinstance(content.parsed, tsp.TSTInfo) else tsp.TSTInfo.load(content.contents)
    imprint = tst["message_imprint"]
    return imprint["hash_algorithm"]["algorithm"].native, imprint["hashed_message"].native
