from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from recordings import ManifestSigner, key_fingerprint, main, verify_recording
from recordings.chain import canonical_json
from tests.recordings.rec_media import Packets, record

VIDEO_SEG_1 = "video/seg_000001.webm"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def resign(manifest_path: Path, key: ed25519.Ed25519PrivateKey, edit: dict | None = None) -> None:
    manifest = json.loads(manifest_path.read_bytes())
    signed = manifest["signed"]
    signed.update(edit or {})
    public = key.public_key()
    signed["public_key"] = {
        "alg": "Ed25519",
        "spki_pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "fingerprint_sha256": key_fingerprint(public),
    }
    manifest["signature"]["value"] = base64.b64encode(key.sign(canonical_json(signed))).decode()
    manifest_path.write_bytes(canonical_json(manifest))


def test_untouched_recording_verifies(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(capsys, str(recording))
    assert code == 0, text
    assert "2 track(s)" in text
    assert "no trust anchor" in text  # the key's fingerprint is reported instead


def test_flipped_byte_names_the_segment(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording / VIDEO_SEG_1
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "segment 1 (seg_000001.webm): SHA-256 mismatch" in text


def test_truncated_segment(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording / VIDEO_SEG_1
    path.write_bytes(path.read_bytes()[:-100])
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "segment 1 (seg_000001.webm): size" in text and "truncated" in text


def test_deleted_segment(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (recording / VIDEO_SEG_1).unlink()
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "segment 1 (seg_000001.webm): file missing" in text


def test_swapped_segments(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = recording / VIDEO_SEG_1, recording / "video/seg_000002.webm"
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "video: segment 1 (seg_000001.webm)" in text


def test_edited_segment_entry_breaks_the_chain(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording / "video/manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["signed"]["segments"][1]["media_start_us"] += 500_000
    path.write_bytes(canonical_json(manifest))
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "segment 1 (seg_000001.webm): hash chain broken" in text


def test_edited_manifest_fails_the_signature(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording / "audio/manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["signed"]["track"]["participant"] = "somebody else"
    path.write_bytes(json.dumps(manifest, indent=1).encode())
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "audio: manifest signature invalid" in text


def test_rehashed_tampering_still_fails_the_signature(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attacker who re-hashes a changed segment and rebuilds the chain cannot re-sign."""
    from recordings.chain import GENESIS, chain_link, hash_file
    from recordings.model import SegmentEntry

    seg = recording / VIDEO_SEG_1
    seg.write_bytes(seg.read_bytes()[:-10] + bytes(10))
    path = recording / "video/manifest.json"
    manifest = json.loads(path.read_bytes())
    head = GENESIS
    for item in manifest["signed"]["segments"]:
        item["sha256"], item["size"] = hash_file(recording / "video" / item["file"])
        entry = SegmentEntry.from_json(item)
        head = chain_link(head, bytes.fromhex(entry.sha256), entry.metadata())
        item["chain"] = head.hex()
    manifest["signed"]["chain_head"] = head.hex()
    path.write_bytes(canonical_json(manifest))
    code, text = run_cli(capsys, str(recording))
    assert code == 1
    assert "video: manifest signature invalid" in text
    assert "first entry differing from the journal: segment 1 (seg_000001.webm)" in text


def test_manifest_signed_by_another_key(
    recording: Path, server_key: ed25519.Ed25519PrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    path = recording / "video/manifest.json"
    segments = json.loads(path.read_bytes())["signed"]["segments"]
    segments[2]["wall_start_us"] += 1  # breaks the chain: caught before the key is looked at
    resign(path, attacker, {"segments": segments})
    assert "segment 2 (seg_000002.webm): hash chain broken" in verify_recording(recording).message
    segments[2]["wall_start_us"] -= 1
    resign(path, attacker, {"segments": segments})
    trust = tmp_path / "server.pem"
    trust.write_bytes(
        server_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    code, text = run_cli(capsys, str(recording), "--trust", str(trust))
    assert code == 1
    assert (
        f"video: manifest signed by an untrusted key (sha256:{key_fingerprint(attacker.public_key())})"
        in text
    )
    # Without a trust anchor the signature is merely valid: report whose key it is.
    result = verify_recording(recording)
    assert result.exit_code == 0
    assert {t.key_fingerprint for t in result.tracks} == {
        key_fingerprint(attacker.public_key()),
        key_fingerprint(server_key.public_key()),
    }


def test_trusted_key_passes(recording: Path, server_key: ed25519.Ed25519PrivateKey) -> None:
    result = verify_recording(recording, trusted=[server_key.public_key()])
    assert result.exit_code == 0
    assert all(t.key_trusted for t in result.tracks)


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def test_certificate_chain_to_trusted_root(
    tmp_path: Path, vp8_packets: Packets, capsys: pytest.CaptureFixture[str]
) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Bank Root", root_key, "Bank Root", root_key, True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("Bank Seal CA", inter_key, "Bank Root", root_key, True)
    seal_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("Recording seal", seal_key, "Bank Seal CA", inter_key, False)
    signer = ManifestSigner(seal_key, certificates=(leaf, inter))
    record(tmp_path / "rec" / "v", "vp8", vp8_packets[:40], signer)
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    code, text = run_cli(capsys, str(tmp_path / "rec"), "--trust", str(ca_pem))
    assert code == 0, text
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = tmp_path / "other.pem"
    other.write_bytes(
        _cert("Other Root", other_key, "Other Root", other_key, True).public_bytes(serialization.Encoding.PEM)
    )
    code, text = run_cli(capsys, str(tmp_path / "rec"), "--trust", str(other))
    assert code == 1 and "untrusted key" in text


def test_signer_rejects_certificate_of_another_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("x", ec.generate_private_key(ec.SECP256R1()), "x", key, False)
    with pytest.raises(Exception, match="does not belong"):
        ManifestSigner(key, certificates=(cert,))


def test_ecdsa_p256_manifest(tmp_path: Path, vp8_packets: Packets, ecdsa_signer: ManifestSigner) -> None:
    record(tmp_path / "v", "vp8", vp8_packets[:40], ecdsa_signer)
    manifest = json.loads((tmp_path / "v/manifest.json").read_bytes())
    assert manifest["signature"]["alg"] == "ES256-DER"
    assert verify_recording(tmp_path / "v").exit_code == 0


def fake_tsa(imprint_of: bytes | None = None):  # type: ignore[no-untyped-def]
    """A token shaped like an RFC 3161 answer (unsigned: the verifier checks the imprint)."""

    def stamp(head: bytes) -> bytes:
        info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": "1.3.6.1.4.1.99999.1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "hashed_message": imprint_of if imprint_of is not None else head,
                },
                "serial_number": 7,
                "gen_time": dt.datetime.now(dt.UTC),
            }
        )
        signed = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(info.dump()),
                },
                "signer_infos": [],
            }
        )
        return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()

    return stamp


def test_timestamp_token_over_chain_head(
    tmp_path: Path, vp8_packets: Packets, server_key: ed25519.Ed25519PrivateKey
) -> None:
    record(
        tmp_path / "good" / "v", "vp8", vp8_packets[:40], ManifestSigner(server_key, timestamper=fake_tsa())
    )
    result = verify_recording(tmp_path / "good")
    assert result.exit_code == 0 and result.tracks[0].timestamped
    record(
        tmp_path / "bad" / "v",
        "vp8",
        vp8_packets[:40],
        ManifestSigner(server_key, timestamper=fake_tsa(bytes(32))),
    )
    result = verify_recording(tmp_path / "bad")
    assert result.exit_code == 1
    assert "timestamp token does not cover the chain head" in result.message


def test_tsa_outage_still_seals_without_token(
    tmp_path: Path, vp8_packets: Packets, server_key: ed25519.Ed25519PrivateKey
) -> None:
    def down(head: bytes) -> bytes:
        raise ConnectionError("TSA unreachable")

    record(tmp_path / "v", "vp8", vp8_packets[:40], ManifestSigner(server_key, timestamper=down))
    assert json.loads((tmp_path / "v/manifest.json").read_bytes())["timestamp_token"] is None
    result = verify_recording(tmp_path / "v")
    assert result.exit_code == 0 and not result.tracks[0].timestamped


def test_garbage_timestamp_token(recording: Path) -> None:
    path = recording / "audio/manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["timestamp_token"] = base64.b64encode(b"not a token").decode()
    path.write_bytes(canonical_json(manifest))
    result = verify_recording(recording)
    assert result.exit_code == 1 and "timestamp token unreadable" in result.message


@pytest.mark.parametrize("damage", ["not json", "other format", "no segments list"])
def test_unreadable_manifest_in_a_recording_is_tampering(recording: Path, damage: str) -> None:
    path = recording / "video/manifest.json"
    manifest = json.loads(path.read_bytes())
    if damage == "not json":
        path.write_bytes(b"{oops")
    elif damage == "other format":
        manifest["signed"]["format"] = "x"
        path.write_bytes(canonical_json(manifest))
    else:
        manifest["signed"]["segments"] = "none"
        path.write_bytes(canonical_json(manifest))
    result = verify_recording(recording)
    assert result.exit_code == 1
    assert "video/manifest.json" in result.message


def test_segment_name_cannot_escape_the_folder(
    recording: Path, server_key: ed25519.Ed25519PrivateKey
) -> None:
    path = recording / "video/manifest.json"
    manifest = json.loads(path.read_bytes())
    segments = manifest["signed"]["segments"]
    segments[0]["file"] = "../audio/seg_000000.webm"
    resign(path, server_key, {"segments": segments})
    result = verify_recording(recording)
    assert result.exit_code == 1 and "segment 0" in result.message


def test_unsealed_track_is_missing_data(recording: Path) -> None:
    (recording / "video/manifest.json").unlink()
    result = verify_recording(recording)
    assert result.exit_code == 1 and "never sealed" in result.message


def test_not_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/cat.webm").write_bytes(b"\x1a\x45\xdf\xa3 meow")
    random_file = tmp_path / "random.bin"
    random_file.write_bytes(b"\x00" * 100)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    for target in (empty, tmp_path / "photos", random_file, other_zip, tmp_path / "nope"):
        code, text = run_cli(capsys, str(target))
        assert code == 2, (target, text)


def test_module_cli_exit_codes(recording: Path, tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "recordings", str(recording)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    shutil.rmtree(recording / "video")
    (recording / "audio/seg_000002.webm").write_bytes(b"x")
    bad = subprocess.run([sys.executable, "-m", "recordings", str(recording)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "seg_000002.webm" in bad.stderr
    nothing = subprocess.run([sys.executable, "-m", "recordings", str(tmp_path / "x")], capture_output=True)
    assert nothing.returncode == 2


def test_package_stands_alone() -> None:
    """A verifier installs `recordings` only: it must not pull in the server, signing or aiortc."""
    code = (
        "import sys, recordings, recordings.verify, recordings.recover;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rtc_server', 'signing', 'aiortc')];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
