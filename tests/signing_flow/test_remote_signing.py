"""The remote signing workflow over HTTP, with a real aiortc signer publishing over WHIP.

Identity needs live video, consent only from the signer's own invite, sign only after both; the
signed PDF is checked by pyhanko, poppler's pdfsig and `rtc-server verify-pdf`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rtc_server.appkeys import SERVICES
from rtc_server.audit import verify_chain
from signing import id_number_hash
from tests.media.media_clients import wait_until
from tests.signing_flow.flow_support import (
    b64,
    make_nss_db,
    pdfsig_blocks,
    png,
    publish,
    rtc_server,
    wait_live,
)
from tests.support import Api, assert_error

pytestmark = pytest.mark.slow


def _seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _url(sid: str, step: str) -> str:
    return f"/api/v1/signings/{sid}/{step}"


async def _post(api: Api, sid: str, step: str, token: str, payload: dict[str, Any] | None = None) -> Any:
    resp = await api.client.post(_url(sid, step), json=payload or {}, headers=api.auth(token))
    return resp.status, await resp.json()


async def test_remote_signing_end_to_end(api: Api, tmp_path: Path) -> None:
    created = await api.create_signing()
    sid = created["id"]
    signer = created["invites"]["signer"]
    signer_id = signer["participant_id"]
    officer = api.officer
    observer = (
        await (
            await api.client.post(
                f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(officer)
            )
        ).json()
    )["token"]

    # Nothing can happen before the signer is on video.
    status, err = await _post(api, sid, "identity", officer, {"decision": "confirmed"})
    assert status == 409, err
    assert_error(err, "invalid_state")
    status, err = await _post(api, sid, "consent", signer["token"], {"accept": True})
    assert status == 409, err

    # Audio alone puts the signing live, but identity needs a picture.
    audio_only, _ = await publish(api, sid, signer["token"], video=False)
    publisher = None
    try:
        detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(officer))).json()
        assert detail["state"] == "live"
        status, err = await _post(api, sid, "identity", officer, {"decision": "confirmed"})
        assert status == 409, err
        assert_error(err, "signer_not_live")

        publisher, _ = await publish(api, sid, signer["token"])
        await wait_live(api, sid, signer["participant_id"])
        # The signer and observers cannot confirm identity.
        for token in (signer["token"], observer):
            status, err = await _post(api, sid, "identity", token, {"decision": "confirmed"})
            assert status == 403, err
        status, err = await _post(api, sid, "identity", officer, {"decision": "maybe"})
        assert status == 400, err
        status, view = await _post(
            api, sid, "identity", officer, {"decision": "confirmed", "notes": "ID card"}
        )
        assert status == 200, view
        assert view["state"] == "identity_confirmed"
        identity = view["steps"][0]
        assert identity["status"] == "confirmed" and identity["notes"] == "ID card"
        assert identity["media_time_s"] > 0 and identity["video_frame_age_s"] < 2.0

        # Sign is refused until consent; consent comes from the signer's own token only.
        status, err = await _post(api, sid, "sign", officer)
        assert status == 409, err
        for token in (officer, observer):
            status, err = await _post(api, sid, "consent", token, {"accept": True})
            assert status == 403, err
        status, err = await _post(api, sid, "consent", signer["token"], {"accept": False})
        assert status == 400, err
        bad: list[tuple[dict[str, Any], int]] = [
            ({"accept": True, "signature_png": "not base64!"}, 400),
            ({"accept": True, "signature_png": b64(b"GIF89a" + b"\0" * 100)}, 400),
            ({"accept": True, "signature_png": b64(png()[:200])}, 400),  # truncated PNG
            ({"accept": True, "signature_png": b64(b"\x89PNG" + b"\0" * 210_000)}, 413),
            ({"accept": True, "signature_png": b64(png(3000, 1000))}, 400),  # too many pixels
        ]
        for payload, expected in bad:
            status, err = await _post(api, sid, "consent", signer["token"], payload)
            assert status == expected, (str(payload["signature_png"])[:20], err)
            assert_error(err)
        # Where the signer is, as the signaling socket records it (participant.location).
        await api.app[SERVICES].sessions.record(
            sid,
            "participant.location",
            f"participant:{signer['participant_id']}",
            {
                "participant_id": signer["participant_id"],
                "latitude": 47.3769,
                "longitude": 8.5417,
                "accuracy": 25.0,
            },
        )
        drawn = png()
        status, view = await _post(
            api, sid, "consent", signer["token"], {"accept": True, "signature_png": b64(drawn)}
        )
        assert status == 200, view
        consent = view["steps"][1]
        assert consent["status"] == "given" and consent["on_video"] is True
        assert consent["media_time_s"] >= identity["media_time_s"]
        assert consent["handwritten_signature_sha256"]

        started = time.perf_counter()
        status, signed = await _post(api, sid, "sign", officer)
        sign_s = time.perf_counter() - started
        assert status == 200, signed
        print(f"\nsign over HTTP: {sign_s:.2f} s, server-side {signed['sign_ms']} ms, {signed['size']} bytes")
        status, err = await _post(api, sid, "sign", officer)
        assert status == 409, err
    finally:
        await audio_only.close()
        if publisher is not None:
            await publisher.close()

    # The signed PDF is what the document URL serves now, to the officer and to the signer.
    resp = await api.client.get(signed["document_url"], headers=api.auth(signer["token"]))
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    pdf = await resp.read()
    assert resp.headers["X-Content-SHA256"] == signed["sha256"]
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)

    report = await asyncio.to_thread(api.app[SERVICES].signing.validate, pdf)
    assert report.ok, report.to_text()
    # The one-shot certificate names the signer's ID number only by its salted hash, the one
    # computed when the signing was created (the number itself was never stored).
    async with api.app[SERVICES].repo.read() as tx:
        stored = await tx.session(sid)
    assert stored is not None
    id_hash = stored.details["signer"]["id_number_sha256"]
    assert id_hash == id_number_hash(
        "110101199003071234", bytes.fromhex(stored.details["signer"]["id_number_salt"])
    )
    assert any(id_hash in s.signer for s in report.signatures if s.kind == "signature"), report.to_text()
    assert "110101199003071234" not in pdf.decode("latin-1")

    resp = await api.client.get("/api/v1/pki/ca.pem")
    assert resp.status == 200
    ca = tmp_path / "ca.pem"
    ca.write_bytes(await resp.read())
    blocks = pdfsig_blocks(path, make_nss_db(tmp_path / "nss", ca.read_bytes()))
    for field in ("Signer", "BankSeal"):
        assert "Signature is Valid." in blocks[field], blocks
        assert "Certificate is Trusted." in blocks[field], blocks[field]
    assert "Li Wei" in blocks["Signer"]

    ok = rtc_server("verify-pdf", str(path), "--trust", str(ca))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    tampered = bytearray(pdf)
    at = pdf.index(b"Contract 0")
    tampered[at] ^= 0x01
    (tmp_path / "tampered.pdf").write_bytes(bytes(tampered))
    bad_run = rtc_server("verify-pdf", str(tmp_path / "tampered.pdf"), "--trust", str(ca))
    assert bad_run.returncode == 1, bad_run.stdout
    untrusted = rtc_server("verify-pdf", str(path))
    assert untrusted.returncode == 1, untrusted.stdout

    # Evidence travels inside the PDF: the audit trail and the steps with their media times.
    attached = subprocess.run(["pdfdetach", "-list", str(path)], capture_output=True, text=True).stdout
    assert "audit-trail.json" in attached and "signing-evidence.json" in attached
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert "Consent given" in text and "Identity confirmed on video" in text
    assert "47.37690, 8.54170" in text
    for name in ("audit-trail.json", "signing-evidence.json"):
        subprocess.run(["pdfdetach", "-savefile", name, "-o", str(tmp_path / name), str(path)], check=True)
    embedded_trail = json.loads((tmp_path / "audit-trail.json").read_text())
    evidence = json.loads((tmp_path / "signing-evidence.json").read_text())
    assert verify_chain(embedded_trail) is None and embedded_trail[-1]["type"] == "signing.started"
    assert evidence["audit_trail_head"] == embedded_trail[-1]["hash"]
    assert evidence["consent"]["media_time_s"] == consent["media_time_s"]
    assert evidence["signer"]["id_number_masked"].endswith("1234") and "id_number" not in evidence["signer"]
    # Media time = seconds since the signer's first publish (the recorder's clock base).
    first_publish = next(
        e
        for e in embedded_trail
        if e["type"] == "media.published" and e["data"]["participant_id"] == signer_id
    )
    elapsed = _seconds(consent["at"]) - _seconds(first_publish["ts"])
    assert abs(consent["media_time_s"] - elapsed) < 0.01

    detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(officer))).json()
    assert detail["state"] == "signed"
    assert [s["status"] for s in detail["steps"]] == ["confirmed", "given", "signed"]
    assert detail["steps"][2]["sha256"] == signed["sha256"]
    assert {d["purpose"] for d in detail["documents"]} == {"original", "signed"}
    trail = await (await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(officer))).json()
    assert verify_chain(trail) is None
    types = [e["type"] for e in trail]
    for kind in ("signing.identity_confirmed", "signing.consent_given", "signing.started", "signing.signed"):
        assert types.count(kind) == 1, types
    assert (
        types.index("signing.identity_confirmed")
        < types.index("signing.consent_given")
        < types.index("signing.signed")
    )
    signed_event = next(e for e in trail if e["type"] == "signing.signed")
    assert signed_event["data"]["evidence_head"] == evidence["audit_trail_head"]
    consent_event = next(e for e in trail if e["type"] == "signing.consent_given")
    assert consent_event["data"]["media_time_s"] == consent["media_time_s"]
    assert consent_event["actor"] == f"participant:{signer['participant_id']}"
    verified = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events/verify", headers=api.auth(officer))
    ).json()
    assert verified["intact"] is True


async def test_rejected_identity_ends_the_signing(api: Api) -> None:
    created = await api.create_signing()
    sid, signer = created["id"], created["invites"]["signer"]
    publisher, location = await publish(api, sid, signer["token"], video=False)
    try:
        status, view = await _post(
            api, sid, "identity", api.officer, {"decision": "rejected", "notes": "not the person"}
        )
        assert status == 200, view
        assert view["state"] == "ended" and view["steps"][0]["status"] == "rejected"
        # Media is closed at once and cannot come back.
        assert not api.app[SERVICES].media.has_resource(location.rsplit("/", 1)[-1])
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whip",
            data="v=0\r\n",
            headers={"Content-Type": "application/sdp", **api.auth(signer["token"])},
        )
        assert resp.status == 409
        for step, token, payload in (
            ("identity", api.officer, {"decision": "confirmed"}),
            ("consent", signer["token"], {"accept": True}),
            ("sign", api.officer, {}),
        ):
            status, err = await _post(api, sid, step, token, payload)
            assert status == 409, err
            assert_error(err, "session_ended")
        trail = await (
            await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
        ).json()
        rejected = [e for e in trail if e["type"] == "signing.identity_rejected"]
        assert len(rejected) == 1 and rejected[0]["data"]["notes"] == "not the person"
        assert rejected[0]["data"]["to"] == "ended"
        assert verify_chain(trail) is None
    finally:
        await publisher.close()


async def test_consent_is_refused_off_camera(api: Api) -> None:
    created = await api.create_signing()
    sid, signer = created["id"], created["invites"]["signer"]
    publisher, _ = await publish(api, sid, signer["token"])
    try:
        await wait_live(api, sid, signer["participant_id"])
        status, view = await _post(api, sid, "identity", api.officer, {"decision": "confirmed"})
        assert status == 200, view
    finally:
        await publisher.close()
    media = api.app[SERVICES].media
    await wait_until(lambda: not media.is_live(sid, signer["participant_id"], 2.0), within=10)
    status, err = await _post(api, sid, "consent", signer["token"], {"accept": True})
    assert status == 409, err
    assert_error(err, "signer_not_live")
    publisher, _ = await publish(api, sid, signer["token"])
    try:
        await wait_live(api, sid, signer["participant_id"])
        status, view = await _post(api, sid, "consent", signer["token"], {"accept": True})
        assert status == 200, view
        assert view["steps"][1]["on_video"] is True
    finally:
        await publisher.close()


async def test_signing_steps_on_an_inspection_or_unknown_session(api: Api) -> None:
    inspection = await api.create_inspection()
    status, err = await _post(api, inspection["id"], "identity", api.officer, {"decision": "confirmed"})
    assert status == 404, err
    assert_error(err, "not_a_signing")
    status, err = await _post(api, "ses_nope", "sign", api.officer)
    assert status == 404, err
    created = await api.create_signing()
    status, err = await _post(api, created["id"], "sign", api.other_officer)
    assert status == 403, err
    resp = await api.client.post(_url(created["id"], "identity"), data="x", headers=api.auth(api.officer))
    assert resp.status == 415
    status, err = await _post(api, created["id"], "identity", api.officer, {"decision": "confirmed", "x": 1})
    assert status == 400, err
