"""The web routes: pages and static files are served with the security headers, nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import Api

WEB = Path(__file__).resolve().parents[2] / "rtc_server" / "web"


async def test_pages_are_served_with_a_strict_policy(api: Api) -> None:
    for path in ("/", "/join/ses_abc-123_X"):
        resp = await api.client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        body = await resp.text()
        assert '<script type="module" src="/static/js/' in body


async def test_static_files_have_their_types(api: Api) -> None:
    for path, ctype in (
        ("/static/js/console.js", "application/javascript"),
        ("/static/js/join.js", "application/javascript"),
        ("/static/vendor/qrcode-generator/qrcode.js", "application/javascript"),
        ("/static/css/base.css", "text/css"),
        ("/static/img/icon.svg", "image/svg+xml"),
    ):
        resp = await api.client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == ctype, path


async def test_unknown_and_escaping_paths_are_404(api: Api) -> None:
    for path in (
        "/join/not%20an%20id",
        "/join/" + "x" * 65,
        "/static/js/missing.js",
        "/static/../pyproject.toml",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/.hidden",
        "/static/js/",
        "/console.html",
    ):
        resp = await api.client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"


def test_pages_carry_no_inline_script_or_style() -> None:
    # CSP would block them in the browser; this catches them before a browser test has to.
    for page in WEB.glob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert not re.search(r"\sstyle\s*=", html), page
        assert not re.search(r"\son[a-z]+\s*=", html), page
        assert "<style" not in html, page
    for module in (WEB / "static" / "js").glob("*.js"):
        source = module.read_text()
        assert "innerHTML" not in source, module
        assert "setAttribute('style'" not in source, module
        assert "localStorage" not in source, module  # tokens live in this tab only


def test_vendored_code_keeps_its_licence() -> None:
    licence = (WEB / "static" / "vendor" / "qrcode-generator" / "LICENSE").read_text()
    assert "MIT" in licence and "Kazuhiko Arase" in licence


def _keys(block: str) -> set[str]:
    return set(re.findall(r"^\s{4}(\w+):", block, flags=re.MULTILINE))


def test_every_text_exists_in_english_and_chinese() -> None:
    # i18n.js holds the tables; later modules add theirs with addStrings({en: {...}, zh: {...}}).
    en: set[str] = set()
    zh: set[str] = set()
    for module in (WEB / "static" / "js").glob("*.js"):
        source = module.read_text()
        if "  en: {" not in source:
            continue
        en_block = source.split("  en: {", 1)[1].split("\n  },\n", 1)[0]
        zh_block = source.split("  zh: {", 1)[1].split("\n  },\n", 1)[0]
        assert _keys(en_block) == _keys(zh_block), (module.name, _keys(en_block) ^ _keys(zh_block))
        en |= _keys(en_block)
        zh |= _keys(zh_block)
    assert len(en) > 100
    assert en == zh, {"only English": en - zh, "only Chinese": zh - en}
    used = set()
    for page in WEB.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-aria)?="(\w+)"', page.read_text()))
    for module in (WEB / "static" / "js").glob("*.js"):
        used |= set(re.findall(r"\bt\('(\w+)'", module.read_text()))
    assert used <= en, used - en
