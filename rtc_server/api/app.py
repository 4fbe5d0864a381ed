"""The one application factory; the server and the tests both call `create_app`."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from rtc_server.api import (
    auth_routes,
    evidence_routes,
    inspection_routes,
    media_routes,
    middleware,
    ops_routes,
    pki_routes,
    preview_routes,
    session_routes,
    signaling_routes,
    signing_routes,
    web_routes,
)
from rtc_server.appkeys import CONFIG, SERVICES, SOCKETS
from rtc_server.config import Config
from rtc_server.services import open_services


def create_app(config: Config) -> web.Application:
    # JSON bodies stay under the 1 MiB default; the contract upload streams its multipart parts
    # with its own limit (http.max_document_bytes), so the app-wide limit is not raised.
    app = web.Application(
        middlewares=[middleware.metrics, middleware.cors, middleware.security_headers, middleware.errors],
        client_max_size=1024 * 1024,
    )
    app[CONFIG] = config
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_sockets)
    app.cleanup_ctx.append(_services)
    app.add_routes(ops_routes.routes)
    app.add_routes(auth_routes.routes)
    app.add_routes(session_routes.routes)
    app.add_routes(media_routes.routes)
    app.add_routes(evidence_routes.routes)
    app.add_routes(signaling_routes.routes)
    app.add_routes(signing_routes.routes)
    app.add_routes(inspection_routes.routes)
    app.add_routes(preview_routes.routes)
    app.add_routes(pki_routes.routes)
    app.add_routes(web_routes.routes)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    async with open_services(app[CONFIG]) as services:
        app[SERVICES] = services
        services.ready = True
        yield
        services.ready = False


async def _close_sockets(app: web.Application) -> None:
    """Going away: browsers reconnect (to this server once restarted, or another) without waiting
    for a heartbeat to time out."""
    open_sockets = app[SOCKETS]
    sockets = list(open_sockets)
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
        return_exceptions=True,
    )
