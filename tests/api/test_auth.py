"""Login, tokens, throttling and the roles every endpoint checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from rtc_server.appkeys import SERVICES
from rtc_server.config import Config
from tests.support import PASSWORD, Api, assert_error, make_config, start_api


async def test_login_returns_token_that_authenticates(api: Api) -> None:
    resp = await api.client.post("/api/v1/login", json={"username": "officer1", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"token", "expires_at"}
    assert body["expires_at"].endswith("Z")
    me = await api.client.get("/api/v1/me", headers=api.auth(body["token"]))
    assert me.status == 200
    assert (await me.json()) == {"kind": "user", "username": "officer1", "role": "officer"}


async def test_tokens_are_stored_hashed(api: Api) -> None:
    import sqlalchemy as sa

    async with api.app[SERVICES].db.engine.connect() as conn:
        stored = [r[0] for r in await conn.execute(sa.text("SELECT token_hash FROM auth_tokens"))]
        passwords = [r[0] for r in await conn.execute(sa.text("SELECT password_hash FROM users"))]
    assert api.officer not in stored and all(len(h) == 64 for h in stored)
    assert all(p.startswith("scrypt$") and PASSWORD not in p for p in passwords)


async def test_wrong_password_and_unknown_user_are_401(api: Api) -> None:
    for body in (
        {"username": "officer1", "password": "wrong password!"},
        {"username": "nobody", "password": PASSWORD},
    ):
        resp = await api.client.post("/api/v1/login", json=body)
        assert resp.status == 401
        assert_error(await resp.json(), "invalid_credentials")


async def test_login_input_errors(api: Api) -> None:
    resp = await api.client.post("/api/v1/login", data="username=a", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert_error(await resp.json(), "expected_json")
    resp = await api.client.post(
        "/api/v1/login", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert_error(await resp.json(), "invalid_json")
    resp = await api.client.post("/api/v1/login", json=["officer1", PASSWORD])
    assert resp.status == 400
    resp = await api.client.post("/api/v1/login", json={"username": "officer1"})
    assert resp.status == 400
    resp = await api.client.post("/api/v1/login", json={"password": PASSWORD})
    assert resp.status == 400
    assert_error(await resp.json(), "missing_field")
    resp = await api.client.post("/api/v1/login", json={"username": 5, "password": PASSWORD})
    assert resp.status == 400
    resp = await api.client.post("/api/v1/login", json={"username": "a", "password": "b", "extra": 1})
    assert resp.status == 400
    assert_error(await resp.json(), "unknown_field")
    big = "x" * (2 * 1024 * 1024)
    resp = await api.client.post("/api/v1/login", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")


async def test_repeated_failures_are_throttled_per_username(api: Api) -> None:
    limit = api.app[SERVICES].config.auth.login_max_failures
    for _ in range(limit):
        resp = await api.client.post(
            "/api/v1/login", json={"username": "officer2", "password": "guess guess"}
        )
        assert resp.status == 401
    resp = await api.client.post("/api/v1/login", json={"username": "officer2", "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert_error(await resp.json(), "rate_limited")
    metrics = await (await api.client.get("/metrics")).text()
    assert 'rtc_logins_total{outcome="rate_limited"} 1.0' in metrics


async def test_expired_token_is_refused(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: object
) -> None:
    from pathlib import Path

    config: Config = make_config(Path(str(tmp_path)) / "d", auth={"token_ttl_s": 1})
    api = await start_api(aiohttp_client, config)
    accounts = api.app[SERVICES].accounts
    real_clock = accounts.clock
    accounts.clock = lambda: real_clock() + 5
    resp = await api.client.get("/api/v1/sessions", headers=api.auth(api.officer))
    assert resp.status == 401
    assert_error(await resp.json(), "invalid_token")


async def test_missing_malformed_and_unknown_tokens(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer rtco_not-a-real-token"},
        {"Authorization": "Bearer rtci_nope"},
    ):
        resp = await api.client.get("/api/v1/sessions", headers=headers)
        assert resp.status == 401, headers
        assert_error(await resp.json())


async def test_logout_revokes_the_token(api: Api) -> None:
    resp = await api.client.post("/api/v1/logout", headers=api.auth(api.other_officer))
    assert resp.status == 200
    resp = await api.client.get("/api/v1/sessions", headers=api.auth(api.other_officer))
    assert resp.status == 401


async def test_invite_tokens_cannot_make_back_office_calls(api: Api) -> None:
    created = await api.create_inspection()
    invite = created["invites"]["staff"]["token"]
    me = await api.client.get("/api/v1/me", headers=api.auth(invite))
    assert (await me.json())["role"] == "staff"
    calls = [
        ("GET", "/api/v1/sessions", None),
        ("POST", "/api/v1/inspections", {"title": "x"}),
        ("GET", f"/api/v1/sessions/{created['id']}", None),
        ("GET", f"/api/v1/sessions/{created['id']}/events", None),
        ("POST", f"/api/v1/sessions/{created['id']}/invites", {"role": "observer"}),
        ("POST", f"/api/v1/sessions/{created['id']}/end", None),
        ("POST", "/api/v1/logout", None),
    ]
    for method, path, body in calls:
        resp = await api.client.request(method, path, json=body, headers=api.auth(invite))
        assert resp.status == 403, (method, path)
        assert_error(await resp.json(), "forbidden")
