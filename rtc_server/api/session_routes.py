"""Sessions API of API.md: inspections, signings, invites, detail, audit trail, end, the contract."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Any

from aiohttp import BodyPartReader, web

from rtc_server.api.auth_routes import principal_of
from rtc_server.api.validation import Fields, read_json_object
from rtc_server.appkeys import SERVICES
from rtc_server.audit import verify_chain
from rtc_server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from rtc_server.lifecycle import State
from rtc_server.models import ParticipantRole, SessionKind
from rtc_server.sessions import ItemSpec, SignerSpec, session_summary

routes = web.RouteTableDef()

MAX_ITEMS = 1000


def _session_id(request: web.Request) -> str:
    return request.match_info["id"]


def _created(session: Any, invites: dict[str, Any]) -> web.Response:
    body = session_summary(session)
    body["invites"] = {role: invite.view() for role, invite in invites.items()}
    return web.json_response(body, status=201, headers={"Location": f"/api/v1/sessions/{session.id}"})


@routes.post("/api/v1/inspections")
async def create_inspection(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    fields = Fields(await read_json_object(request))
    fields.reject_unknown("title", "site", "items")
    title = fields.required_string("title")
    site = fields.object("site")
    items: list[ItemSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(fields.array("items", max_items=MAX_ITEMS)):
        if not isinstance(raw, dict):
            raise BadRequest(f"Field 'items[{i}]' must be an object.", code="invalid_field")
        item = Fields(raw, f"items[{i}]")
        item.reject_unknown("sku", "description", "expected_qty")
        sku = item.required_string("sku", max_len=128)
        if sku in seen:
            raise BadRequest(f"SKU {sku!r} is listed twice.", code="duplicate_sku")
        seen.add(sku)
        items.append(
            ItemSpec(
                sku=sku,
                description=item.string("description", required=False, max_len=500),
                expected_qty=item.integer("expected_qty", minimum=0),
            )
        )
    session, invites = await request.app[SERVICES].sessions.create_inspection(principal, title, site, items)
    return _created(session, invites)


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The {what} is larger than {limit} bytes.", code="document_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _safe_filename(name: str | None) -> str:
    base = (name or "contract.pdf").replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base).strip() or "contract.pdf"
    return base[:120]


@routes.post("/api/v1/signings")
async def create_signing(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await principal_of(request)
    principal.require_user()
    limit = services.config.http.max_document_bytes
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "Send multipart/form-data with 'document' (PDF) and 'signer' (JSON).", code="expected_multipart"
        )
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(f"The document is larger than {limit} bytes.", code="document_too_large")
    reader = await request.multipart()
    pdf: bytes | None = None
    filename = "contract.pdf"
    signer_raw: bytes | None = None
    title: str | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not accepted.", code="invalid_multipart")
        if part.name == "document":
            ctype = part.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip().lower()
            if ctype not in ("application/pdf", "application/octet-stream", "application/x-pdf"):
                raise UnsupportedMediaType(
                    f"The document must be application/pdf, not {ctype}.", code="document_not_pdf"
                )
            filename = _safe_filename(part.filename)
            pdf = await _read_part(part, limit, "document")
        elif part.name == "signer":
            signer_raw = await _read_part(part, 8 * 1024, "signer field")
        elif part.name == "title":
            title = (await _read_part(part, 1024, "title")).decode("utf-8", "replace").strip() or None
        else:
            raise BadRequest(f"Unknown form field {part.name!r}.", code="unknown_field")
    if pdf is None:
        raise BadRequest("The form field 'document' (the PDF) is required.", code="missing_field")
    if signer_raw is None:
        raise BadRequest("The form field 'signer' (JSON) is required.", code="missing_field")
    try:
        signer_obj = json.loads(signer_raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The form field 'signer' is not valid JSON.", code="invalid_json") from None
    if not isinstance(signer_obj, dict):
        raise BadRequest("The form field 'signer' must be a JSON object.", code="invalid_json")
    fields = Fields(signer_obj, "signer")
    fields.reject_unknown("name", "id_number", "phone", "email")
    email = fields.string("email", required=False, max_len=254)
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise BadRequest("Field 'signer.email' is not an email address.", code="invalid_field")
    phone = fields.string("phone", required=False, max_len=32)
    if phone is not None and not re.fullmatch(r"\+?[0-9 ()\-]{5,32}", phone):
        raise BadRequest("Field 'signer.phone' is not a phone number.", code="invalid_field")
    signer = SignerSpec(
        name=fields.required_string("name"),
        id_number=fields.string("id_number", required=False, max_len=64),
        phone=phone,
        email=email,
    )
    if title is not None and len(title) > 200:
        raise BadRequest("Field 'title' must be at most 200 characters.", code="invalid_field")
    session, invites = await services.sessions.create_signing(principal, title, signer, filename, pdf)
    return _created(session, invites)


@routes.get("/api/v1/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    query = request.query
    state = query.get("state")
    if state is not None and state not in {s.value for s in State}:
        raise BadRequest(f"Unknown state {state!r}.", code="invalid_query")
    kind = query.get("kind")
    if kind is not None and kind not in {k.value for k in SessionKind}:
        raise BadRequest(f"Unknown kind {kind!r}.", code="invalid_query")
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise BadRequest("'limit' must be an integer.", code="invalid_query") from None
    if not 1 <= limit <= 200:
        raise BadRequest("'limit' must be from 1 to 200.", code="invalid_query")
    before = None
    if "before" in query:
        try:
            before = datetime.fromisoformat(query["before"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise BadRequest("'before' must be an RFC 3339 time.", code="invalid_query") from None
    found = await request.app[SERVICES].sessions.list_sessions(
        principal, state=state, kind=kind, limit=limit, before=before
    )
    return web.json_response({"sessions": found})


@routes.get("/api/v1/sessions/{id}")
async def session_detail(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    services = request.app[SERVICES]
    view = await services.sessions.detail(principal, _session_id(request))
    view["recordings"] = await asyncio.to_thread(services.recorder.describe, view["id"])
    return web.json_response(view)


@routes.post("/api/v1/sessions/{id}/invites")
async def create_invite(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    fields = Fields(await read_json_object(request))
    fields.reject_unknown("role")
    role_name = fields.required_string("role", max_len=32)
    try:
        role = ParticipantRole(role_name)
    except ValueError:
        raise BadRequest("Field 'role' must be observer, staff or signer.", code="invalid_role") from None
    invite = await request.app[SERVICES].sessions.create_invite(principal, _session_id(request), role)
    return web.json_response(invite.view(), status=201)


@routes.get("/api/v1/sessions/{id}/events")
async def events(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise BadRequest("'after' must be an integer sequence number.", code="invalid_query") from None
    trail = await request.app[SERVICES].sessions.events(principal, _session_id(request), after)
    return web.json_response(trail)


@routes.get("/api/v1/sessions/{id}/events/verify")
async def verify_events(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    trail = await request.app[SERVICES].sessions.events(principal, _session_id(request))
    broken = verify_chain(trail)
    if broken is None:
        return web.json_response(
            {"intact": True, "events": len(trail), "head": trail[-1]["hash"] if trail else None}
        )
    return web.json_response(
        {"intact": False, "events": len(trail), "first_broken_seq": broken.seq, "reason": broken.reason}
    )


@routes.post("/api/v1/sessions/{id}/end")
async def end_session(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    session = await request.app[SERVICES].conference.end(principal, _session_id(request))
    return web.json_response(session_summary(session))


@routes.get("/api/v1/signings/{id}/document")
async def signing_document(request: web.Request) -> web.FileResponse:
    principal = await principal_of(request)
    document = await request.app[SERVICES].sessions.document(principal, _session_id(request))
    return web.FileResponse(
        document.path,
        headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": f'inline; filename="{document.filename}"',
            "X-Content-SHA256": document.sha256,
        },
    )
