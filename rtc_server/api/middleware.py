"""Middlewares: errors as JSON, security headers, CORS, and request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from rtc_server.appkeys import CONFIG, SERVICES
from rtc_server.errors import ApiError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> web.Response:
    error: dict[str, object] = {"code": code, "message": message}
    if extra:
        error.update(extra)
    return web.json_response({"error": error}, status=status, headers=headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        body = exc.body()
        return web.json_response(body, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        if exc.status == 404:
            message = "No such resource."
        elif exc.status == 405:
            message = f"Method {request.method} is not allowed here."
        elif exc.status == 413:
            message = "The request body is too large."
        else:
            message = exc.reason or HTTPStatus(exc.status).phrase
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, code, message, headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal_error", "The server failed to handle this request.")


# Pages get a strict policy; media needs blob: for previews and wss:/https: for signaling.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' wss: ws:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self)")
    headers.setdefault("Content-Security-Policy", _CSP)
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    if request.app[CONFIG].server.tls:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


_EXPOSED = "Location, ETag, Link, Retry-After, Content-Disposition, Accept-Patch"


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = request.app[CONFIG].http.cors_origins
    permitted = origin is not None and ("*" in allowed or origin in allowed)
    if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
        if not permitted:
            return error_response(403, "origin_not_allowed", f"Origin {origin} may not call this API.")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
    response = await handler(request)
    if permitted and origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED
        response.headers.add("Vary", "Origin")
    return response


@web.middleware
async def metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        m = request.app[SERVICES].metrics
        m.http_requests.labels(method=request.method, route=name, status=str(status)).inc()
        m.http_latency.labels(route=name).observe(time.perf_counter() - start)
