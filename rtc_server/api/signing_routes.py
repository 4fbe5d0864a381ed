"""Remote signing steps of API.md: identity on video, consent, sign (the download is in session_routes)."""

from __future__ import annotations

from aiohttp import web

from rtc_server.api.auth_routes import principal_of
from rtc_server.api.validation import Fields, read_json_object
from rtc_server.appkeys import SERVICES
from rtc_server.errors import BadRequest
from rtc_server.models import Session
from rtc_server.sessions import session_summary, signing_steps
from rtc_server.signing_flow import decode_signature_png

routes = web.RouteTableDef()


def _step_view(session: Session) -> dict[str, object]:
    return {**session_summary(session), "steps": signing_steps(session)}


@routes.post("/api/v1/signings/{id}/identity")
async def identity(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    fields = Fields(await read_json_object(request))
    fields.reject_unknown("decision", "notes")
    decision = fields.required_string("decision", max_len=16)
    if decision not in ("confirmed", "rejected"):
        raise BadRequest("Field 'decision' must be confirmed or rejected.", code="invalid_field")
    notes = fields.string("notes", required=False, max_len=2000)
    flow = request.app[SERVICES].signing_flow
    session = await flow.identity(principal, request.match_info["id"], decision == "confirmed", notes)
    return web.json_response(_step_view(session))


@routes.post("/api/v1/signings/{id}/consent")
async def consent(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    fields = Fields(await read_json_object(request))
    fields.reject_unknown("accept", "signature_png")
    if not fields.boolean("accept"):
        raise BadRequest(
            "Consent is given with accept: true; a signer who does not agree simply does not consent.",
            code="consent_not_accepted",
        )
    raw = fields.obj.get("signature_png")
    if raw is not None and not isinstance(raw, str):
        raise BadRequest("Field 'signature_png' must be a base64 string.", code="invalid_field")
    png = decode_signature_png(raw) if raw else None
    flow = request.app[SERVICES].signing_flow
    session = await flow.consent(principal, request.match_info["id"], png)
    return web.json_response(_step_view(session))


@routes.post("/api/v1/signings/{id}/sign")
async def sign(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    session_id = request.match_info["id"]
    outcome = await request.app[SERVICES].signing_flow.sign(principal, session_id)
    return web.json_response(
        {
            "document_url": f"/api/v1/signings/{session_id}/document",
            "sha256": outcome.document.sha256,
            "size": outcome.document.size,
            "sign_ms": round(outcome.seconds * 1000),
        }
    )
