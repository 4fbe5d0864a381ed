"""Inspection steps of API.md: stills of the staff's live video and the sealed report."""

from __future__ import annotations

from aiohttp import web

from rtc_server.api.auth_routes import principal_of
from rtc_server.appkeys import SERVICES

routes = web.RouteTableDef()


@routes.post("/api/v1/inspections/{id}/snapshots")
async def take_snapshot(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    still = await request.app[SERVICES].inspection.snapshot(principal, request.match_info["id"])
    return web.json_response(still, status=201, headers={"Location": still["url"]})


@routes.get("/api/v1/inspections/{id}/snapshots")
async def list_snapshots(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    stills = await request.app[SERVICES].inspection.stills(principal, request.match_info["id"])
    return web.json_response({"stills": stills})


@routes.get("/api/v1/inspections/{id}/snapshots/{still}")
async def snapshot_file(request: web.Request) -> web.FileResponse:
    principal = await principal_of(request)
    doc = await request.app[SERVICES].inspection.still(
        principal, request.match_info["id"], request.match_info["still"]
    )
    ctype = "image/png" if doc.filename.endswith(".png") else "image/jpeg"
    return web.FileResponse(
        doc.path,
        headers={
            "Content-Type": ctype,
            "Content-Disposition": f'inline; filename="{doc.filename}"',
            "X-Content-SHA256": doc.sha256,
            "Cache-Control": "private, max-age=86400, immutable",
        },
    )


@routes.get("/api/v1/inspections/{id}/report")
async def inspection_report(request: web.Request) -> web.FileResponse:
    principal = await principal_of(request)
    doc = await request.app[SERVICES].inspection.report(principal, request.match_info["id"])
    return web.FileResponse(
        doc.path,
        headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": f'attachment; filename="{doc.filename}"',
            "X-Content-SHA256": doc.sha256,
        },
    )
