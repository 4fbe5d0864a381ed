"""Offline verification of a recording folder (one or many tracks) or an evidence zip.

Exit codes (API.md, `verify-recording`): 0 everything checks out, 1 tampered or missing data
(the message names the first bad segment), 2 not a recording.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .chain import GENESIS, canonical_json, chain_link, hash_stream
from .errors import ManifestError
from .manifest import (
    VerifyKey,
    key_fingerprint,
    load_public_key,
    parse_manifest,
    timestamp_imprint,
    verify_signature,
)
from .model import JOURNAL_NAME, MANIFEST_NAME, SegmentEntry
from .sources import RecordingSource, open_source, sibling

Trust = VerifyKey | x509.Certificate
Status = Literal["ok", "tampered", "not_a_recording"]
EXIT_CODES: dict[Status, int] = {"ok": 0, "tampered": 1, "not_a_recording": 2}


@dataclass
class TrackVerification:
    manifest: str
    track_id: str = ""
    codec: str = ""
    segments: int = 0
    dropped: list[str] = field(default_factory=list)
    chain_head: str = ""
    key_fingerprint: str = ""
    key_trusted: bool | None = None
    timestamped: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerificationResult:
    path: str
    status: Status
    message: str
    tracks: list[TrackVerification] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def verify_recording(path: Path | str, *, trusted: Sequence[Trust] = ()) -> VerificationResult:
    """Check every manifest under `path` and every segment it lists. Blocking: run off-loop."""
    path = Path(path)
    source = open_source(path)
    if source is None:
        return VerificationResult(str(path), "not_a_recording", f"{path}: not a folder or zip file")
    try:
        return _verify_source(str(path), source, trusted)
    finally:
        source.close()


def _verify_source(label: str, source: RecordingSource, trusted: Sequence[Trust]) -> VerificationResult:
    names = source.names()
    manifests = [n for n in names if PurePosixPath(n).name == MANIFEST_NAME]
    journals = [n for n in names if PurePosixPath(n).name == JOURNAL_NAME]
    if not manifests and not journals:
        return VerificationResult(label, "not_a_recording", f"{label}: no recording manifest found")
    tracks = [_verify_track(source, name, trusted) for name in manifests]
    manifest_dirs = {str(PurePosixPath(m).parent) for m in manifests}
    for journal in journals:
        folder = str(PurePosixPath(journal).parent)
        if folder not in manifest_dirs:
            tracks.append(
                TrackVerification(journal, problems=[f"{folder}: track was never sealed (no manifest)"])
            )
    bad = [t for t in tracks if not t.ok]
    if bad:
        return VerificationResult(label, "tampered", bad[0].problems[0], tracks)
    summary = f"{label}: {len(tracks)} track(s), {sum(t.segments for t in tracks)} segment(s) verified"
    untrusted = [t.key_fingerprint for t in tracks if t.key_trusted is None]
    if untrusted:
        summary += f"; signed by key sha256:{untrusted[0]} (no trust anchor given)"
    return VerificationResult(label, "ok", summary, tracks)


def _verify_track(source: RecordingSource, manifest_name: str, trusted: Sequence[Trust]) -> TrackVerification:
    result = TrackVerification(manifest_name)
    folder = str(PurePosixPath(manifest_name).parent)
    try:
        with source.open(manifest_name) as stream:
            manifest = parse_manifest(stream.read())
        signed = manifest["signed"]
        raw_segments = signed["segments"]
        if not isinstance(raw_segments, list):
            raise ManifestError("segments is not a list")
        result.track_id = str(signed["track"]["track_id"])
        result.codec = str(signed["track"]["codec"])
    except (ManifestError, KeyError, TypeError) as exc:
        result.problems.append(f"{manifest_name}: manifest unreadable ({exc})")
        return result
    result.segments = len(raw_segments)
    result.dropped = [str(d.get("file")) for d in signed.get("dropped", []) if isinstance(d, dict)]
    where = f"{folder}" if folder != "." else result.track_id
    head = _check_segments(source, manifest_name, raw_segments, where, result.problems)
    result.chain_head = head.hex()
    if signed.get("chain_head") != head.hex():
        result.problems.append(f"{where}: manifest chain head does not match its segments")
    if signed.get("segment_count") != len(raw_segments):
        result.problems.append(f"{where}: manifest segment count does not match its segment list")
    before = len(result.problems)
    _check_signature(manifest, where, trusted, result)
    if len(result.problems) > before:
        hint = _journal_hint(source, folder, raw_segments)
        if hint:
            result.problems[-1] += f"; {hint}"
    _check_timestamp(manifest.get("timestamp_token"), head, where, result)
    return result


def _check_segments(
    source: RecordingSource, manifest_name: str, raw: list[Any], where: str, problems: list[str]
) -> bytes:
    """Verify every listed segment in order; returns the recomputed chain head."""
    head = GENESIS
    for position, item in enumerate(raw):
        label = f"{where}: segment {position}"
        try:
            entry = SegmentEntry.from_json(item)
        except (ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{label}: manifest entry malformed ({exc})")
            continue
        label = f"{where}: segment {position} ({entry.file})"
        link = chain_link(head, _digest(entry.sha256), entry.metadata())
        if entry.index != position:
            problems.append(f"{label}: listed at position {position} with index {entry.index}")
        if entry.chain != link.hex():
            problems.append(f"{label}: hash chain broken (manifest entry edited)")
        head = link
        name = sibling(manifest_name, entry.file)
        size = source.size(name) if name is not None else None
        if name is None or size is None:
            problems.append(f"{label}: file missing")
            continue
        if size != entry.size:
            problems.append(f"{label}: size {size} bytes, manifest says {entry.size} (truncated or altered)")
            continue
        with source.open(name) as stream:
            digest, _ = hash_stream(stream)
        if digest != entry.sha256:
            problems.append(f"{label}: SHA-256 mismatch (content altered or swapped)")
    return head


def _journal_hint(source: RecordingSource, folder: str, raw: list[Any]) -> str:
    """Name the first segment whose manifest entry differs from the track's journal.

    The journal is not signed, so this only points at where to look when the manifest's own
    signature cannot be trusted.
    """
    name = f"{folder}/{JOURNAL_NAME}" if folder != "." else JOURNAL_NAME
    if source.size(name) is None:
        return ""
    journaled: dict[int, dict[str, Any]] = {}
    with source.open(name) as stream:
        for line in stream.read().splitlines():
            try:
                record = json.loads(line)
                entry = record["entry"] if record.get("type") == "segment" else None
                if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                    journaled[entry["index"]] = entry
            except (ValueError, AttributeError, KeyError, TypeError):
                continue
    for position, item in enumerate(raw):
        if journaled.get(position) != item:
            file = item.get("file") if isinstance(item, dict) else "?"
            return f"first entry differing from the journal: segment {position} ({file})"
    return ""


def _digest(hex_value: str) -> bytes:
    try:
        value = bytes.fromhex(hex_value)
    except ValueError:
        return bytes(32)
    return value if len(value) == 32 else bytes(32)


def _check_signature(
    manifest: dict[str, Any], where: str, trusted: Sequence[Trust], result: TrackVerification
) -> None:
    signed = manifest["signed"]
    try:
        key_info = signed["public_key"]
        key = load_public_key(key_info["spki_pem"])
        signature = base64.b64decode(manifest["signature"]["value"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error, ManifestError) as exc:
        result.problems.append(f"{where}: manifest signature unreadable ({exc})")
        return
    result.key_fingerprint = key_fingerprint(key)
    if not verify_signature(key, signature, canonical_json(signed)):
        result.problems.append(f"{where}: manifest signature invalid (manifest edited after signing)")
        return
    if not trusted:
        return
    certificates = _load_certificates(signed.get("certificates", []))
    # Certificates are judged at sealing time: a recording outlives its seal certificate.
    sealed_at = signed.get("sealed_at_us")
    at = datetime.fromtimestamp(sealed_at / 1e6, UTC) if isinstance(sealed_at, int) else datetime.now(UTC)
    result.key_trusted = _is_trusted(key, certificates, trusted, at)
    if not result.key_trusted:
        result.problems.append(
            f"{where}: manifest signed by an untrusted key (sha256:{result.key_fingerprint})"
        )


def _load_certificates(pems: Any) -> list[x509.Certificate]:
    if not isinstance(pems, list):
        return []
    certificates = []
    for pem in pems:
        try:
            certificates.append(x509.load_pem_x509_certificate(str(pem).encode()))
        except ValueError:
            continue
    return certificates


def _is_trusted(
    key: VerifyKey, chain: list[x509.Certificate], trusted: Sequence[Trust], at: datetime
) -> bool:
    fingerprint = key_fingerprint(key)
    anchors = [t for t in trusted if isinstance(t, x509.Certificate)]
    for anchor in trusted:
        anchor_key = anchor.public_key() if isinstance(anchor, x509.Certificate) else anchor
        if key_fingerprint(anchor_key) == fingerprint:  # type: ignore[arg-type]
            return True
    if not chain or key_fingerprint(chain[0].public_key()) != fingerprint:  # type: ignore[arg-type]
        return False
    current = chain[0]
    pool = chain[1:] + anchors
    for _ in range(len(pool) + 1):
        if not current.not_valid_before_utc <= at <= current.not_valid_after_utc:
            return False
        anchor_hit = [a for a in anchors if a.subject == current.issuer and _issued_by(current, a)]
        if anchor_hit:
            return True
        parents = [c for c in pool if c.subject == current.issuer and _issued_by(current, c)]
        if not parents or parents[0] is current:
            return False
        current = parents[0]
    return False


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except Exception:  # wrong key type, bad signature, unsupported algorithm: not issued by it
        return False
    return True


def _check_timestamp(token_b64: Any, head: bytes, where: str, result: TrackVerification) -> None:
    if token_b64 is None:
        return
    try:
        algorithm, imprint = timestamp_imprint(base64.b64decode(str(token_b64), validate=True))
    except (ValueError, binascii.Error, ManifestError) as exc:
        result.problems.append(f"{where}: timestamp token unreadable ({exc})")
        return
    if algorithm != "sha256" or imprint != head:
        result.problems.append(f"{where}: timestamp token does not cover the chain head")
        return
    result.timestamped = True


def load_trust(path: Path) -> list[Trust]:
    """Certificates and public keys from a PEM file (or one DER certificate)."""
    data = path.read_bytes()
    found: list[Trust] = []
    if b"-----BEGIN" not in data:
        return [x509.load_der_x509_certificate(data)]
    for block in data.split(b"-----END ")[:-1]:
        start = block.find(b"-----BEGIN ")
        label = block[start + 11 : block.find(b"-----", start + 11)]
        pem = block[start:] + b"-----END " + label + b"-----\n"
        if label == b"CERTIFICATE":
            found.append(x509.load_pem_x509_certificate(pem))
        elif label == b"PUBLIC KEY":
            found.append(load_public_key(pem.decode()))
        else:
            key = serialization.load_pem_public_key(pem)
            found.append(
                load_public_key(
                    key.public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    ).decode()
                )
            )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """`verify-recording PATH [--trust PEM]...`: prints a report, returns the exit code."""
    parser = argparse.ArgumentParser(prog="verify-recording", description=__doc__)
    parser.add_argument("path", type=Path, help="recording folder or evidence zip")
    parser.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        help="PEM file with trusted certificates or public keys (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        trusted = [t for p in args.trust for t in load_trust(p)]
    except (OSError, ValueError, ManifestError) as exc:
        print(f"cannot read trust file: {exc}", file=sys.stderr)
        return 2
    result = verify_recording(args.path, trusted=trusted)
    for track in result.tracks:
        state = "OK" if track.ok else "FAILED"
        extra = f", dropped after crash: {', '.join(track.dropped)}" if track.dropped else ""
        stamp = ", timestamped" if track.timestamped else ""
        print(f"{state} {track.manifest}: {track.segments} segment(s){stamp}{extra}")
    stream = sys.stdout if result.status == "ok" else sys.stderr
    print(result.message, file=stream)
    return result.exit_code
