"""The web client's signaling WebSocket (protocol: rtc_server/signaling.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from typing import Any

from aiohttp import WSMsgType, web

from rtc_server import signaling
from rtc_server.accounts import Principal
from rtc_server.api.media_routes import media_error
from rtc_server.appkeys import SERVICES, SOCKETS
from rtc_server.conference import Client
from rtc_server.errors import ApiError
from rtc_server.inspection import hint_message
from rtc_server.lifecycle import is_active
from rtc_server.media import MediaError
from rtc_server.models import ParticipantRole
from rtc_server.services import Services

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

HELLO_TIMEOUT_S = 10.0
OUTBOX_SIZE = 512


class Outbox:
    """Messages to one socket, written by one task in order. A client too slow to drain 512 messages
    is disconnected (it reconnects and resynchronises) rather than buffered without bound."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(OUTBOX_SIZE)
        self.overflowed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def run(self) -> None:
        while (message := await self.queue.get()) is not None:
            await self.ws.send_json(message)
        await self.ws.close(code=1013, message=b"too slow")


def _error(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        out["ref"] = ref
    return out


async def _hello(
    ws: web.WebSocketResponse, services: Services, session_id: str
) -> tuple[Principal, signaling.Hello] | None:
    try:
        msg = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except TimeoutError:
        await ws.send_json(_error("hello_timeout", "Send a hello message with your token first."))
        return None
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        hello = signaling.parse(msg.data)
        if not isinstance(hello, signaling.Hello):
            raise signaling.SignalingError(
                "hello_expected", "The first message must be a hello with a token."
            )
        principal = await services.accounts.authenticate(hello.token)
        session = await services.sessions.get(principal, session_id)
        if not is_active(session.state):
            await ws.send_json(_error("session_ended", "The session has ended."))
            return None
    except signaling.SignalingError as exc:
        await ws.send_json(exc.message_dict())
        return None
    except ApiError as exc:
        await ws.send_json(_error(exc.code, exc.message))
        return None
    return principal, hello


@routes.get("/api/v1/sessions/{id}/ws")
async def signaling_socket(request: web.Request) -> web.WebSocketResponse:
    services = request.app[SERVICES]
    session_id = request.match_info["id"]
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=signaling.MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    greeted = await _hello(ws, services, session_id)
    if greeted is None:
        await ws.close()
        return ws
    principal, hello = greeted
    conference = services.conference
    session = await services.sessions.get(principal, session_id)
    participant = await conference.participant_for(principal, session)
    outbox = Outbox(ws)
    client = Client(session_id=session_id, participant=participant, principal=principal, send=outbox.send)
    writer = asyncio.create_task(outbox.run())
    roster = await conference.join(client, hello.device)
    outbox.send(
        {
            "type": "welcome",
            "participant_id": participant.id,
            "role": participant.role.value,
            "session": {
                "id": session.id,
                "kind": session.kind.value,
                "title": session.title,
                "state": session.state,
            },
            "participants": roster,
            "ice_servers": [
                {
                    "urls": s.urls,
                    **({"username": s.username, "credential": s.credential} if s.username else {}),
                }
                for s in services.config.media.ice_servers
            ],
        }
    )
    # A page that reconnects while a quality hint is on shows it again at once.
    for hint in services.inspection.active_hints(session_id, participant.id):
        outbox.send(hint_message(hint, True))
    is_officer = participant.role is ParticipantRole.OFFICER
    relay = asyncio.create_task(_relay_events(services, client, is_officer))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    outbox.send(_error("invalid_message", "Messages are JSON text."))
                continue
            await _handle(services, client, principal, msg.data)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await conference.leave(client)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writer
    return ws


async def _relay_events(services: Services, client: Client, is_officer: bool) -> None:
    with services.bus.subscribe(client.session_id) as sub:
        while True:
            event = await sub.get()
            if is_officer:
                client.send({"type": "event", "event": event})
            data = event.get("data") or {}
            if "to" in data and "from" in data:
                client.send({"type": "session", "state": data["to"]})


async def _handle(services: Services, client: Client, principal: Principal, raw: str) -> None:
    conference = services.conference
    ref: str | None = None
    try:
        message = signaling.parse(raw)
        if isinstance(message, signaling.Subscribe):
            ref = message.ref
        if isinstance(message, signaling.Ping):
            client.send({"type": "pong"})
        elif isinstance(message, signaling.Hello):
            raise signaling.SignalingError("already_joined", "This connection has already said hello.")
        elif isinstance(message, signaling.Publish):
            handle = await conference.publish(principal, client.session_id, message.sdp, "ws", client)
            client.send({"type": "published", "resource_id": handle.resource_id, "sdp": handle.answer_sdp})
        elif isinstance(message, signaling.Unpublish):
            if client.publisher is not None:
                await conference.stop(principal, client.session_id, client.publisher)
            client.send({"type": "unpublished"})
        elif isinstance(message, signaling.Subscribe):
            handle = await conference.subscribe(
                principal, client.session_id, message.sdp, message.participant_id, "ws", client
            )
            client.send(
                {
                    "type": "subscribed",
                    "ref": message.ref,
                    "resource_id": handle.resource_id,
                    "participant_id": message.participant_id,
                    "sdp": handle.answer_sdp,
                }
            )
        elif isinstance(message, signaling.Unsubscribe):
            if message.resource_id not in client.viewers:
                raise signaling.SignalingError(
                    "unknown_resource", "This connection has no such subscription."
                )
            await conference.stop(principal, client.session_id, message.resource_id)
            client.send({"type": "unsubscribed", "resource_id": message.resource_id})
        elif isinstance(message, signaling.Location):
            await services.sessions.record(
                client.session_id,
                "participant.location",
                principal.actor,
                {"participant_id": client.participant.id, **asdict(message)},
            )
            client.send({"type": "location_saved"})
    except signaling.SignalingError as exc:
        client.send(exc.message_dict())
    except MediaError as exc:
        err = media_error(exc)
        client.send(_error(err.code, err.message, ref))
    except ApiError as exc:
        client.send(_error(exc.code, exc.message, ref))
    except Exception:
        log.exception("signaling message failed")
        client.send(_error("internal_error", "The server failed to handle this message.", ref))
