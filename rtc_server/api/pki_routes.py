"""Trust material anyone may fetch: the root (API.md "Trust"), the CRLs the certificates name, the dev TSA."""

from __future__ import annotations

import asyncio

from aiohttp import web

from rtc_server.api.validation import read_body
from rtc_server.appkeys import SERVICES
from rtc_server.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from signing import TSA_CONTENT_TYPE, TSA_REQUEST_CONTENT_TYPE

routes = web.RouteTableDef()

MAX_TSA_REQUEST_BYTES = 16 * 1024
# Public, unauthenticated and identical for every caller: caches and relying parties may keep them.
_CACHE = {"Cache-Control": "public, max-age=300"}


@routes.get("/api/v1/pki/ca.pem")
async def ca_pem(request: web.Request) -> web.Response:
    pem = request.app[SERVICES].signing.ca_pem()
    return web.Response(
        body=pem,
        headers={
            "Content-Type": "application/x-pem-file",
            "Content-Disposition": 'inline; filename="ca.pem"',
            **_CACHE,
        },
    )


@routes.get(r"/api/v1/pki/crl/{name:[a-z0-9-]+}.crl")
async def crl(request: web.Request) -> web.Response:
    service = request.app[SERVICES].signing
    name = request.match_info["name"]
    if name not in service.crl_names():
        raise NotFound(f"No CRL named {name!r}.", code="crl_not_found")
    # Re-signing a CRL that is about to expire is a signature: keep it off the loop.
    der = await asyncio.to_thread(service.crl_der, name)
    return web.Response(body=der, headers={"Content-Type": "application/pkix-crl", **_CACHE})


@routes.post("/api/v1/pki/tsa")
async def tsa(request: web.Request) -> web.Response:
    service = request.app[SERVICES].signing
    if service.local_tsa is None:
        raise NotFound("This server does not run a timestamp authority.", code="tsa_not_served")
    if request.content_type != TSA_REQUEST_CONTENT_TYPE:
        raise UnsupportedMediaType(
            f"Send an RFC 3161 request as {TSA_REQUEST_CONTENT_TYPE}.", code="expected_tsq"
        )
    if request.content_length is not None and request.content_length > MAX_TSA_REQUEST_BYTES:
        raise PayloadTooLarge("Timestamp requests are a few hundred bytes.", code="tsq_too_large")
    der = await read_body(request, MAX_TSA_REQUEST_BYTES)
    if der is None:
        raise PayloadTooLarge("Timestamp requests are a few hundred bytes.", code="tsq_too_large")
    reply = await asyncio.to_thread(service.handle_tsa_request, der)
    return web.Response(body=reply, headers={"Content-Type": TSA_CONTENT_TYPE})
