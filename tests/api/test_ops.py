"""Health, metrics, the JSON error model on unknown routes, security headers and CORS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.support import Api, assert_error, make_config, start_api


async def test_healthz(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_metrics_exposes_sessions_and_media_families(api: Api) -> None:
    await api.create_inspection()
    await api.create_signing()
    text = await (await api.client.get("/metrics")).text()
    assert 'rtc_sessions{kind="inspection",state="waiting"} 1.0' in text
    assert 'rtc_sessions{kind="signing",state="waiting"} 1.0' in text
    assert 'rtc_http_requests_total{method="POST",route="/api/v1/inspections",status="201"} 1.0' in text
    for family in (
        "rtc_peers",
        "rtc_forwarded_frames",
        "rtc_forwarded_bytes",
        "rtc_recording_bytes",
        "rtc_forward_delay_seconds",
        "rtc_http_request_duration_seconds",
    ):
        assert f"# TYPE {family}" in text


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    resp = await api.client.get("/api/v1/unknown")
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    resp = await api.client.delete("/api/v1/login")
    assert resp.status == 405
    assert_error(await resp.json(), "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


async def test_security_headers(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    resp = await api.client.get("/api/v1/sessions", headers=api.auth(api.officer))
    assert resp.headers["Cache-Control"] == "no-store"


async def test_cors_only_for_configured_origins(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    config = make_config(tmp_path / "d", http={"cors_origins": ["https://portal.bank.example"]})
    api = await start_api(aiohttp_client, config)
    preflight = {
        "Origin": "https://portal.bank.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    resp = await api.client.options("/api/v1/sessions/x/whip", headers=preflight)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://portal.bank.example"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    resp = await api.client.get(
        "/api/v1/sessions", headers={**api.auth(api.officer), "Origin": "https://portal.bank.example"}
    )
    assert resp.headers["Access-Control-Allow-Origin"] == "https://portal.bank.example"
    assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    resp = await api.client.options(
        "/api/v1/sessions", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert resp.status == 403
    resp = await api.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
