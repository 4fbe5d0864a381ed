"""The contract's first page as a PNG, for the signer's phone (a PDF viewer is not a given there).

`GET /api/v1/signings/{id}/document/preview.png` (officer or signer, as the document itself): the
first page of the current document (the original until signed, then the signed PDF), rendered with
PDFium (pypdfium2) in one worker thread (PDFium is not thread-safe, and rendering must stay off the
event loop), at most PREVIEW_MAX_WIDTH x PREVIEW_MAX_HEIGHT pixels, cached by the document's SHA-256
(content-addressed, so one cache serves every session and app safely).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]
from aiohttp import web

from rtc_server.api.auth_routes import principal_of
from rtc_server.appkeys import SERVICES
from rtc_server.errors import ApiError

PREVIEW_MAX_WIDTH = 1000
PREVIEW_MAX_HEIGHT = 1600
# A page larger than this (in points) is refused rather than rendered at a tiny scale: no real
# contract page is over 5 m wide, and PDFium allocates by the page size first.
MAX_PAGE_POINTS = 14400
CACHE_ENTRIES = 32

routes = web.RouteTableDef()

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-preview")
_cache: OrderedDict[str, bytes] = OrderedDict()
_cache_lock = threading.Lock()


class PreviewUnavailable(ApiError):
    status = 409
    code = "preview_unavailable"


def render_first_page(
    pdf: bytes, max_width: int = PREVIEW_MAX_WIDTH, max_height: int = PREVIEW_MAX_HEIGHT
) -> bytes:
    """PNG of page 1 fitted within max_width x max_height. Blocking: call from a worker thread."""
    try:
        doc = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise PreviewUnavailable(f"The contract cannot be rendered: {exc}.") from exc
    try:
        if len(doc) < 1:
            raise PreviewUnavailable("The contract has no pages.")
        page = doc[0]
        try:
            width_pt, height_pt = page.get_size()
            if not (0 < width_pt <= MAX_PAGE_POINTS and 0 < height_pt <= MAX_PAGE_POINTS):
                raise PreviewUnavailable("The contract's first page has an unusable size.")
            scale = min(max_width / width_pt, max_height / height_pt)
            bitmap = page.render(scale=scale, may_draw_forms=False)
            image = bitmap.to_pil()
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG", optimize=True)
            return out.getvalue()
        finally:
            page.close()
    finally:
        doc.close()


def _cached_render(sha256: str, path: Path) -> bytes:
    with _cache_lock:
        hit = _cache.get(sha256)
        if hit is not None:
            _cache.move_to_end(sha256)
            return hit
    png = render_first_page(path.read_bytes())
    with _cache_lock:
        _cache[sha256] = png
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return png


async def preview_png(sha256: str, path: Path) -> bytes:
    # One worker thread: renders queue instead of running PDFium concurrently, and a second
    # request for the same document finds the first one's result in the cache.
    return await asyncio.get_running_loop().run_in_executor(_executor, _cached_render, sha256, path)


@routes.get("/api/v1/signings/{id}/document/preview.png")
async def document_preview(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    document = await request.app[SERVICES].sessions.document(principal, request.match_info["id"])
    png = await preview_png(document.sha256, Path(document.path))
    return web.Response(
        body=png,
        content_type="image/png",
        headers={
            "X-Document-SHA256": document.sha256,
            "Cache-Control": "private, no-cache",
        },
    )
