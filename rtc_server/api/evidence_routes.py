"""Recordings and the evidence package: list, manifests, segments, and a streamed zip for offline checks."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from aiohttp import web

import recordings
from rtc_server.accounts import Principal
from rtc_server.api.auth_routes import principal_of
from rtc_server.appkeys import SERVICES
from rtc_server.errors import Conflict, NotFound
from rtc_server.lifecycle import is_active
from rtc_server.models import Role, Session
from rtc_server.recorder import public_key_pem
from rtc_server.services import Services

routes = web.RouteTableDef()

_TRACK = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_FILE = re.compile(r"^(seg_\d{6}\.(webm|mkv)|manifest\.json)$")


async def _officer_session(request: web.Request) -> tuple[Services, Principal, Session]:
    services = request.app[SERVICES]
    principal = await principal_of(request)
    principal.require_user(Role.OFFICER)
    session = await services.sessions.get(principal, request.match_info["id"])
    return services, principal, session


@routes.get("/api/v1/sessions/{id}/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    services, _, session = await _officer_session(request)
    session_id = session.id
    return web.json_response(await asyncio.to_thread(services.recorder.describe, session_id))


@routes.get("/api/v1/sessions/{id}/recordings/{track}/{file}")
async def recording_file(request: web.Request) -> web.FileResponse:
    services, _, session = await _officer_session(request)
    session_id = session.id
    track, name = request.match_info["track"], request.match_info["file"]
    if not _TRACK.match(track) or not _FILE.match(name):
        raise NotFound("No such recording file.", code="recording_not_found")
    path = services.recorder.session_dir(session_id) / track / name
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("No such recording file.", code="recording_not_found")
    ctype = {"json": "application/json", "webm": "video/webm", "mkv": "video/x-matroska"}[
        name.rsplit(".", 1)[1]
    ]
    return web.FileResponse(path, headers={"Content-Type": ctype})


@routes.get("/api/v1/pki/recording-key.pem")
async def recording_key(request: web.Request) -> web.Response:
    key = public_key_pem(request.app[SERVICES].recorder.signer.private_key)
    return web.Response(body=key, content_type="application/x-pem-file")


@routes.get("/api/v1/sessions/{id}/evidence")
async def evidence(request: web.Request) -> web.StreamResponse:
    services, principal, session = await _officer_session(request)
    session_id = session.id
    if is_active(session.state):
        raise Conflict("Recordings are sealed when the session ends: end it first.", code="session_not_ended")
    trail = await services.sessions.events(principal, session_id)
    detail = await services.sessions.detail(principal, session_id)
    documents = await services.sessions.documents(session_id)
    entries: list[recordings.evidence.EvidenceEntry] = [
        ("session.json", json.dumps(detail, indent=2, ensure_ascii=False).encode()),
        ("audit/events.json", json.dumps(trail, indent=2, ensure_ascii=False).encode()),
        ("keys/recording-key.pub.pem", public_key_pem(services.recorder.signer.private_key)),
        # The root that documents, reports and manifests chain to, for offline checks.
        ("ca.pem", services.signing.ca_pem()),
    ]
    entries += [(f"documents/{d.purpose}-{d.filename}", Path(d.path)) for d in documents]
    root = services.recorder.session_dir(session_id)
    if await asyncio.to_thread(root.exists):
        entries += await asyncio.to_thread(recordings.recording_entries, root)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="evidence-{session_id}.zip"',
        }
    )
    await response.prepare(request)
    async for chunk in recordings.stream_evidence_zip(entries):
        await response.write(chunk)
    await response.write_eof()
    return response
