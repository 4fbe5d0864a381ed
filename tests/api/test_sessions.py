"""The sessions API of API.md: creation, invites, detail, listing, audit trail, end, the contract."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from pyhanko.pdf_utils import generic, writer

from rtc_server.appkeys import SERVICES
from rtc_server.audit import verify_chain
from tests.support import Api, assert_error, make_pdf


async def test_create_inspection(api: Api) -> None:
    created = await api.create_inspection(site={"name": "Depot 3", "address": "Harbour Rd 1"})
    assert created["kind"] == "inspection"
    assert created["state"] == "waiting"
    staff = created["invites"]["staff"]
    assert staff["token"].startswith("rtci_")
    assert staff["url"].startswith("http://localhost:8443/join/")
    # The token travels in the fragment so it never reaches server logs or Referer headers.
    assert staff["url"].endswith("#" + staff["token"])
    detail = await (
        await api.client.get(f"/api/v1/sessions/{created['id']}", headers=api.auth(api.officer))
    ).json()
    assert [i["sku"] for i in detail["items"]] == ["SKU-1", "SKU-2"]
    assert detail["items"][0]["expected_qty"] == 2 and detail["items"][0]["seen"] is False
    assert detail["site"] == {"name": "Depot 3", "address": "Harbour Rd 1"}
    assert [p["role"] for p in detail["participants"]] == ["staff"]
    assert detail["recordings"] == []
    assert detail["allowed_actions"] == ["go_live", "end"]


async def test_create_inspection_rejects_bad_input(api: Api) -> None:
    bad: list[tuple[Any, str]] = [
        ({}, "missing_field"),
        ({"title": ""}, "invalid_field"),
        ({"title": 7}, "invalid_field"),
        ({"title": "t", "items": "SKU-1"}, "invalid_field"),
        ({"title": "t", "items": ["SKU-1"]}, "invalid_field"),
        ({"title": "t", "items": [{"description": "no sku"}]}, "missing_field"),
        ({"title": "t", "items": [{"sku": "A"}, {"sku": "A"}]}, "duplicate_sku"),
        ({"title": "t", "items": [{"sku": "A", "expected_qty": -1}]}, "invalid_field"),
        ({"title": "t", "items": [{"sku": "A", "expected_qty": "2"}]}, "invalid_field"),
        ({"title": "t", "site": "somewhere"}, "invalid_field"),
        ({"title": "t", "colour": "red"}, "unknown_field"),
    ]
    for body, code in bad:
        resp = await api.client.post("/api/v1/inspections", json=body, headers=api.auth(api.officer))
        assert resp.status == 400, body
        assert_error(await resp.json(), code)
    resp = await api.client.post(
        "/api/v1/inspections",
        data="title=x",
        headers={**api.auth(api.officer), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 415
    listed = await (await api.client.get("/api/v1/sessions", headers=api.auth(api.officer))).json()
    assert listed["sessions"] == []


def _form(
    pdf: bytes | None,
    signer: str | None = '{"name": "Li Wei"}',
    ctype: str = "application/pdf",
    extra: dict[str, str] | None = None,
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if pdf is not None:
        form.add_field("document", pdf, filename="../../etc/loan.pdf", content_type=ctype)
    if signer is not None:
        form.add_field("signer", signer, content_type="application/json")
    for k, v in (extra or {}).items():
        form.add_field(k, v)
    return form


async def test_create_signing_stores_the_document(api: Api) -> None:
    pdf = make_pdf(pages=2)
    created = await api.create_signing(pdf=pdf)
    assert created["kind"] == "signing" and created["state"] == "waiting"
    assert set(created["invites"]) == {"signer"}
    detail = await (
        await api.client.get(f"/api/v1/sessions/{created['id']}", headers=api.auth(api.officer))
    ).json()
    assert detail["signer"]["name"] == "Li Wei"
    # The ID number is never stored in clear: only masked for the officer and as a salted hash.
    assert detail["signer"]["id_number_masked"].endswith("1234")
    assert "110101199003071234" not in str(detail)
    assert [s["status"] for s in detail["steps"]] == ["pending", "pending", "pending"]
    assert detail["documents"][0]["filename"] == "loan.pdf"
    resp = await api.client.get(f"/api/v1/signings/{created['id']}/document", headers=api.auth(api.officer))
    assert resp.status == 200 and resp.content_type == "application/pdf"
    assert await resp.read() == pdf
    signer = created["invites"]["signer"]["token"]
    resp = await api.client.get(f"/api/v1/signings/{created['id']}/document", headers=api.auth(signer))
    assert resp.status == 200 and await resp.read() == pdf


def _encrypted_pdf() -> bytes:
    w = writer.PdfFileWriter()
    w.insert_page(
        writer.PageObject(
            contents=w.add_object(generic.StreamObject(stream_data=b"")),
            media_box=generic.ArrayObject([0, 0, 595, 842]),
        )
    )
    w.encrypt("owner-pass", "user-pass")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


async def test_create_signing_rejects_bad_uploads(api: Api) -> None:
    headers = api.auth(api.officer)
    cases = [
        (_form(b"hello, not a pdf"), 400, "invalid_pdf"),
        (_form(b"%PDF-1.7\n garbage garbage"), 400, "invalid_pdf"),
        (_form(_encrypted_pdf()), 400, "encrypted_pdf"),
        (_form(make_pdf(), ctype="image/png"), 415, "document_not_pdf"),
        (_form(None), 400, "missing_field"),
        (_form(make_pdf(), signer=None), 400, "missing_field"),
        (_form(make_pdf(), signer="{broken"), 400, "invalid_json"),
        (_form(make_pdf(), signer='{"phone": "123456"}'), 400, "missing_field"),
        (_form(make_pdf(), signer='{"name": "A", "email": "not-an-email"}'), 400, "invalid_field"),
        (_form(make_pdf(), signer='{"name": "A", "nickname": "x"}'), 400, "unknown_field"),
        (_form(make_pdf(), extra={"surprise": "x"}), 400, "unknown_field"),
    ]
    for form, status, code in cases:
        resp = await api.client.post("/api/v1/signings", data=form, headers=headers)
        assert resp.status == status, code
        assert_error(await resp.json(), code)
    resp = await api.client.post("/api/v1/signings", json={"document": "x"}, headers=headers)
    assert resp.status == 415
    assert_error(await resp.json(), "expected_multipart")
    listed = await (await api.client.get("/api/v1/sessions", headers=headers)).json()
    assert listed["sessions"] == []


async def test_create_signing_over_the_size_limit_is_413(api: Api) -> None:
    limit = api.app[SERVICES].config.http.max_document_bytes
    big = make_pdf() + b"%" + b"x" * limit
    resp = await api.client.post("/api/v1/signings", data=_form(big), headers=api.auth(api.officer))
    assert resp.status == 413
    assert_error(await resp.json(), "document_too_large")

    # Without Content-Length the streamed part limit must still hold.
    form = _form(big)
    resp = await api.client.post("/api/v1/signings", data=form, headers=api.auth(api.officer), chunked=True)
    assert resp.status == 413
    assert (await api.client.get("/healthz")).status == 200


async def test_extra_invites(api: Api) -> None:
    created = await api.create_inspection()
    sid = created["id"]
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    assert resp.status == 201
    observer = await resp.json()
    assert observer["token"].startswith("rtci_") and observer["url"].endswith(observer["token"])
    # A new staff link re-admits the same field participant rather than adding a second one.
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "staff"}, headers=api.auth(api.officer)
    )
    assert resp.status == 201
    assert (await resp.json())["participant_id"] == created["invites"]["staff"]["participant_id"]
    detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
    assert sorted(p["role"] for p in detail["participants"]) == ["observer", "staff"]
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "signer"}, headers=api.auth(api.officer)
    )
    assert resp.status == 400
    assert_error(await resp.json(), "invalid_role")
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "king"}, headers=api.auth(api.officer)
    )
    assert resp.status == 400
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.other_officer)
    )
    assert resp.status == 403
    resp = await api.client.post(
        "/api/v1/sessions/ses_unknown/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    assert resp.status == 404
    assert_error(await resp.json(), "session_not_found")
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    resp = await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    assert resp.status == 409
    assert_error(await resp.json(), "session_ended")


async def test_session_access_by_role(api: Api) -> None:
    created = await api.create_inspection()
    sid = created["id"]
    for token, status in ((api.officer, 200), (api.admin, 200), (api.other_officer, 403)):
        for path in (f"/api/v1/sessions/{sid}", f"/api/v1/sessions/{sid}/events"):
            resp = await api.client.get(path, headers=api.auth(token))
            assert resp.status == status, (path, status)
    resp = await api.client.get("/api/v1/sessions/ses_nope", headers=api.auth(api.officer))
    assert resp.status == 404
    mine = await (await api.client.get("/api/v1/sessions", headers=api.auth(api.officer))).json()
    theirs = await (await api.client.get("/api/v1/sessions", headers=api.auth(api.other_officer))).json()
    everyone = await (await api.client.get("/api/v1/sessions", headers=api.auth(api.admin))).json()
    assert [s["id"] for s in mine["sessions"]] == [sid]
    assert theirs["sessions"] == []
    assert [s["id"] for s in everyone["sessions"]] == [sid]


async def test_list_sessions_filters_and_validates(api: Api) -> None:
    first = await api.create_inspection(title="first")
    await api.create_signing()
    await api.client.post(f"/api/v1/sessions/{first['id']}/end", headers=api.auth(api.officer))
    h = api.auth(api.officer)
    by_kind = await (await api.client.get("/api/v1/sessions?kind=signing", headers=h)).json()
    assert [s["kind"] for s in by_kind["sessions"]] == ["signing"]
    ended = await (await api.client.get("/api/v1/sessions?state=ended", headers=h)).json()
    assert [s["id"] for s in ended["sessions"]] == [first["id"]]
    limited = await (await api.client.get("/api/v1/sessions?limit=1", headers=h)).json()
    assert len(limited["sessions"]) == 1 and limited["sessions"][0]["kind"] == "signing"  # newest first
    for query in ("state=bogus", "kind=meeting", "limit=0", "limit=abc", "before=yesterday"):
        resp = await api.client.get(f"/api/v1/sessions?{query}", headers=h)
        assert resp.status == 400, query
        assert_error(await resp.json(), "invalid_query")


async def test_end_session_and_state_conflicts(api: Api) -> None:
    created = await api.create_inspection()
    sid = created["id"]
    resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.other_officer))
    assert resp.status == 403
    resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    assert resp.status == 200
    body = await resp.json()
    assert body["state"] == "ended" and body["ended_at"]
    resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    assert resp.status == 409
    assert_error(await resp.json(), "invalid_state")
    resp = await api.client.post("/api/v1/sessions/ses_nope/end", headers=api.auth(api.officer))
    assert resp.status == 404


async def test_audit_trail_records_every_change(api: Api) -> None:
    created = await api.create_inspection()
    sid = created["id"]
    await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    trail = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    assert [e["type"] for e in trail] == [
        "session.created",
        "invite.created",
        "invite.created",
        "session.ended",
    ]
    assert trail[0]["prev_hash"] == "0" * 64
    assert all(e["actor"] == "user:officer1" for e in trail)
    assert trail[-1]["data"] == {"from": "waiting", "to": "ended"}
    assert verify_chain(trail) is None
    # Invite tokens never land in the trail.
    assert created["invites"]["staff"]["token"] not in str(trail)
    later = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events?after=2", headers=api.auth(api.officer))
    ).json()
    assert [e["seq"] for e in later] == [3, 4]
    check = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events/verify", headers=api.auth(api.officer))
    ).json()
    assert check == {"intact": True, "events": 4, "head": trail[-1]["hash"]}
    resp = await api.client.get(f"/api/v1/sessions/{sid}/events?after=x", headers=api.auth(api.officer))
    assert resp.status == 400


async def test_document_access(api: Api) -> None:
    signing = await api.create_signing()
    sid = signing["id"]
    inspection = await api.create_inspection()
    observer = await (
        await api.client.post(
            f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
        )
    ).json()
    path = f"/api/v1/signings/{sid}/document"
    assert (await api.client.get(path, headers=api.auth(observer["token"]))).status == 403
    staff_of_other = inspection["invites"]["staff"]["token"]
    assert (await api.client.get(path, headers=api.auth(staff_of_other))).status == 403
    assert (await api.client.get(path, headers=api.auth(api.other_officer))).status == 403
    assert (await api.client.get(path)).status == 401
    resp = await api.client.get(
        f"/api/v1/signings/{inspection['id']}/document", headers=api.auth(api.officer)
    )
    assert resp.status == 404
    assert_error(await resp.json(), "not_a_signing")


async def test_expired_invite_is_refused(api: Api) -> None:
    signing = await api.create_signing()
    accounts = api.app[SERVICES].accounts
    real_clock = accounts.clock
    accounts.clock = lambda: real_clock() + api.app[SERVICES].config.auth.invite_ttl_s + 1
    resp = await api.client.get(
        f"/api/v1/signings/{signing['id']}/document", headers=api.auth(signing["invites"]["signer"]["token"])
    )
    assert resp.status == 401
    assert_error(await resp.json(), "invalid_token")
