"""Operations: health and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web

from rtc_server.api.middleware import error_response
from rtc_server.appkeys import SERVICES

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if not services.ready:
        return error_response(503, "starting", "The server is starting.")
    try:
        async with services.db.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # the database is the one dependency health must report
        return error_response(503, "database_unavailable", f"The database does not answer: {exc}")
    return web.json_response({"status": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    services.metrics.set_session_counts(await services.sessions.session_counts())
    return web.Response(
        body=services.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
