"""WHIP and WHEP (RFC 9725): publish, watch, trickle ICE by PATCH, DELETE; media errors as API.md says."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from rtc_server.api.auth_routes import principal_of
from rtc_server.api.validation import read_body
from rtc_server.appkeys import SERVICES
from rtc_server.config import IceServer
from rtc_server.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from rtc_server.media import (
    AtCapacity,
    IceRestartUnsupported,
    InvalidSdp,
    MediaError,
    PeerHandle,
    SessionEnded,
    StaleETag,
    UnknownResource,
)

routes = web.RouteTableDef()

MAX_SDP_BYTES = 64 * 1024
TRICKLE_TYPE = "application/trickle-ice-sdpfrag"


def media_error(exc: MediaError) -> ApiError:
    """One mapping from the media engine's errors to HTTP statuses."""
    if isinstance(exc, InvalidSdp):
        return BadRequest(f"The SDP cannot be used: {exc}", code="invalid_sdp")
    if isinstance(exc, UnknownResource):
        return NotFound("No such media resource.", code="resource_not_found")
    if isinstance(exc, StaleETag):
        return PreconditionFailed("If-Match does not match the resource's current ETag.", code="stale_etag")
    if isinstance(exc, IceRestartUnsupported):
        return UnprocessableEntity(
            "ICE restart is not supported: publish again instead.", code="ice_restart_unsupported"
        )
    if isinstance(exc, AtCapacity):
        return ServiceUnavailable(
            "The media server is at capacity; try again shortly.",
            code="at_capacity",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, SessionEnded):
        return Conflict("The session has ended; no media.", code="session_ended")
    return ApiError("The media engine failed.", code=exc.code)


@contextlib.asynccontextmanager
async def mapped_media_errors() -> AsyncIterator[None]:
    try:
        yield
    except MediaError as exc:
        raise media_error(exc) from exc


def ice_link_headers(servers: list[IceServer]) -> list[str]:
    """RFC 9725 section 4.6: one Link per ICE server URL, TURN credentials as parameters."""
    links = []
    for server in servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username:
                link += f'; username="{server.username}"; credential="{server.credential}"'
                link += '; credential-type="password"'
            links.append(link)
    return links


async def _read_sdp(request: web.Request) -> str:
    if request.content_type != "application/sdp":
        raise UnsupportedMediaType("Send the offer as application/sdp.", code="expected_sdp")
    body = await read_body(request, MAX_SDP_BYTES)
    if body is None:
        raise PayloadTooLarge(f"The offer is larger than {MAX_SDP_BYTES} bytes.", code="sdp_too_large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The offer is not UTF-8 text.", code="invalid_sdp") from None
    if not text.lstrip().startswith("v=0"):
        raise BadRequest("The body is not an SDP offer (it must start with v=0).", code="invalid_sdp")
    return text


def _created(request: web.Request, kind: str, handle: PeerHandle) -> web.Response:
    config = request.app[SERVICES].config
    headers = {
        "Location": f"/api/v1/sessions/{handle.session_id}/{kind}/{handle.resource_id}",
        "ETag": handle.etag,
        "Accept-Patch": TRICKLE_TYPE,
    }
    response = web.Response(
        status=201, text=handle.answer_sdp, content_type="application/sdp", headers=headers
    )
    for link in ice_link_headers(config.media.ice_servers):
        response.headers.add("Link", link)
    return response


@routes.post("/api/v1/sessions/{id}/whip")
async def whip(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    offer = await _read_sdp(request)
    async with mapped_media_errors():
        handle = await request.app[SERVICES].conference.publish(
            principal, request.match_info["id"], offer, "whip"
        )
    return _created(request, "whip", handle)


@routes.post("/api/v1/sessions/{id}/whep")
async def whep(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    offer = await _read_sdp(request)
    source = request.query.get("participant") or None
    async with mapped_media_errors():
        handle = await request.app[SERVICES].conference.subscribe(
            principal, request.match_info["id"], offer, source, "whep"
        )
    return _created(request, "whep", handle)


def _resource(request: web.Request) -> tuple[str, str]:
    kind = request.match_info["kind"]
    if kind not in ("whip", "whep"):
        raise NotFound("No such resource.")
    return request.match_info["id"], request.match_info["resource"]


@routes.patch("/api/v1/sessions/{id}/{kind}/{resource}")
async def trickle(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    session_id, resource_id = _resource(request)
    if request.content_type != TRICKLE_TYPE:
        raise UnsupportedMediaType(f"Send ICE candidates as {TRICKLE_TYPE}.", code="expected_sdpfrag")
    body = await read_body(request, MAX_SDP_BYTES)
    if body is None:
        raise PayloadTooLarge("The SDP fragment is too large.", code="sdpfrag_too_large")
    async with mapped_media_errors():
        etag = await request.app[SERVICES].conference.trickle(
            principal,
            session_id,
            resource_id,
            body.decode("utf-8", "replace"),
            request.headers.get("If-Match"),
        )
    return web.Response(status=204, headers={"ETag": etag})


@routes.delete("/api/v1/sessions/{id}/{kind}/{resource}")
async def stop(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    session_id, resource_id = _resource(request)
    async with mapped_media_errors():
        await request.app[SERVICES].conference.stop(principal, session_id, resource_id)
    return web.Response(status=200)
