"""The browser client's pages: the officer console at `/`, the participant page at `/join/{id}`, and
the static ES modules, styles and vendored scripts under `/static/`. No templating: the pages are
plain files, and everything per-session (the invite token above all) is read by the page's script
from the URL fragment, which browsers never send to the server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
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


# Revalidated on every load: a deploy must reach the browsers at once, and the files are small.
_STATIC_HEADERS = {"Cache-Control": "no-cache"}


@routes.get("/static/{path:.+}")
async def static_file(request: web.Request) -> web.FileResponse:
    # Served by hand rather than by aiohttp's static route so that a miss is the API's JSON 404
    # like every other error, and nothing outside web/static can be named.
    path = await asyncio.get_running_loop().run_in_executor(None, _locate, request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=_STATIC_HEADERS)


def _locate(relative: str) -> Path | None:
    """The file under web/static that `relative` names, or None (resolving touches the disk)."""
    if any(part.startswith(".") for part in relative.split("/")):
        return None
    root = STATIC_ROOT.resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None
