"""Login, logout and identifying the caller of every other route."""

from __future__ import annotations

from aiohttp import web

from rtc_server.accounts import Principal
from rtc_server.api.validation import Fields, bearer_token, read_json_object
from rtc_server.appkeys import SERVICES
from rtc_server.errors import ApiError
from rtc_server.models import iso

routes = web.RouteTableDef()


async def principal_of(request: web.Request) -> Principal:
    return await request.app[SERVICES].accounts.authenticate(bearer_token(request))


def client_address(request: web.Request) -> str:
    # Behind a proxy every client shares one address; the username key still throttles guessing.
    return request.remote or "unknown"


@routes.post("/api/v1/login")
async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    fields = Fields(await read_json_object(request))
    fields.reject_unknown("username", "password")
    username = fields.required_string("username", max_len=64)
    password = fields.required_string("password", max_len=1024)
    try:
        token, expires_at = await services.accounts.login(username, password, client_address(request))
    except ApiError as exc:
        services.metrics.logins.labels(outcome=exc.code).inc()
        raise
    services.metrics.logins.labels(outcome="ok").inc()
    return web.json_response({"token": token, "expires_at": iso(expires_at)})


@routes.post("/api/v1/logout")
async def logout(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    principal.require_user()
    await request.app[SERVICES].accounts.logout(bearer_token(request))
    return web.json_response({"status": "logged_out"})


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    if principal.user is not None:
        return web.json_response(
            {"kind": "user", "username": principal.user.username, "role": principal.user.role.value}
        )
    assert principal.invite is not None
    invite = principal.invite
    return web.json_response(
        {
            "kind": "participant",
            "session_id": invite.session_id,
            "participant_id": invite.participant_id,
            "role": invite.role.value,
            "expires_at": iso(invite.expires_at),
        }
    )
