"""The browser client's pages: the officer console at `/`, the participant page at `/join/{id}`, and
the static ES modules, styles and vendored scripts under `/static/`. No templating: the pages are
plain files, and everything per-session (the invite token above all) is read by the page's script
from the URL fragment, which browsers never send to the server."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
STATIC_ROOT = WEB_ROOT / "static"

# Session ids are short url-safe strings; anything else is not a page we serve.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Pages must be revalidated so a deploy reaches browsers at once; they are small.
_PAGE_HEADERS = {"Cache-Control": "no-cache", "Content-Type": "text/html; charset=utf-8"}


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(WEB_ROOT / name, headers=_PAGE_HEADERS)


@routes.get("/")
async def officer_console(request: web.Request) -> web.FileResponse:
    return _page("console.html")


@routes.get("/join/{session_id}")
async def participant_page(request: web.Request) -> web.FileResponse:
    if not _SESSION_ID.fullmatch(request.match_info["session_id"]):
        raise web.HTTPNotFound()
    return _page("join.html")


routes.static("/static", STATIC_ROOT, append_version=False)
