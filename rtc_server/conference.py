"""The conference: who is in a session's media, who may publish and watch, and what that writes.

It sits between the edge (WHIP/WHEP handlers, the signaling socket) and the media engine: it checks
every media call against the session (state, role, ownership of a resource), records joins,
publications and departures in the audit trail, moves a session live when its field participant's
media arrives, and tells connected clients about presence. No aiohttp, no aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from rtc_server.accounts import Principal
from rtc_server.errors import Conflict, Forbidden, NotFound
from rtc_server.lifecycle import Action, State, is_active
from rtc_server.media import MediaService, PeerEvent, PeerHandle
from rtc_server.models import Participant, ParticipantRole, Session
from rtc_server.recorder import RecordingService
from rtc_server.sessions import FIELD_ROLE, SessionService

log = logging.getLogger(__name__)

PUBLISHING_ROLES = frozenset({ParticipantRole.STAFF, ParticipantRole.SIGNER, ParticipantRole.OFFICER})


@dataclass(eq=False)
class Client:
    """One signaling connection. `send` must not block: the edge queues and writes."""

    session_id: str
    participant: Participant
    principal: Principal
    send: Callable[[dict[str, Any]], None]
    publisher: str | None = None
    viewers: set[str] = field(default_factory=set)


class MediaObserver(Protocol):
    """Told of media a session publishes (the inspection analyser). `published` must not block."""

    def published(self, session: Session, participant: Participant) -> None: ...

    async def session_closed(self, session_id: str) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Room:
    clients: set[Client] = field(default_factory=set)
    publishing: dict[str, str] = field(default_factory=dict)  # participant id -> resource id


class Conference:
    def __init__(self, sessions: SessionService, media: MediaService, recorder: RecordingService) -> None:
        self.sessions = sessions
        self.media = media
        self.recorder = recorder
        self._rooms: dict[str, Room] = defaultdict(Room)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._participant_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.observer: MediaObserver | None = None

    # -- who ----------------------------------------------------------------------------------------

    async def participant_for(self, principal: Principal, session: Session) -> Participant:
        """The participant a token stands for; an officer becomes one on first use."""
        if principal.invite is not None:
            found = await self.sessions.participant(principal.invite.participant_id)
            if found is None:  # pragma: no cover - invites reference participants by foreign key
                raise NotFound("The invited participant no longer exists.")
            return found
        user = principal.require_user()
        async with self._participant_locks[session.id]:
            return await self.sessions.officer_participant(session.id, user)

    async def _media_session(self, principal: Principal, session_id: str) -> tuple[Session, Participant]:
        session = await self.sessions.get(principal, session_id)
        if not is_active(session.state):
            raise Conflict("The session has ended; no media.", code="session_ended")
        return session, await self.participant_for(principal, session)

    # -- media --------------------------------------------------------------------------------------

    async def publish(
        self, principal: Principal, session_id: str, offer_sdp: str, via: str, client: Client | None = None
    ) -> PeerHandle:
        session, participant = await self._media_session(principal, session_id)
        if participant.role not in PUBLISHING_ROLES:
            raise Forbidden(f"A {participant.role.value} watches only and cannot publish.")
        handle = await self.media.publish(session_id, participant.id, offer_sdp)
        # Every published track is evidence: recording starts with the participant's first frame.
        self.recorder.start(session_id, participant.id)
        if self.observer is not None:
            self.observer.published(session, participant)
        room = self._rooms[session_id]
        room.publishing[participant.id] = handle.resource_id
        if client is not None:
            client.publisher = handle.resource_id
        await self.sessions.record(
            session_id,
            "media.published",
            principal.actor,
            {"participant_id": participant.id, "resource_id": handle.resource_id, "via": via},
        )
        await self._mark_joined(participant)
        if participant.role is FIELD_ROLE[session.kind] and session.state == State.WAITING:
            with contextlib.suppress(Conflict):  # a concurrent publish may have moved it already
                await self.sessions.transition(
                    None, session_id, Action.GO_LIVE, "session.live", {"participant_id": participant.id}
                )
        self._presence(session_id, participant)
        return handle

    async def subscribe(
        self,
        principal: Principal,
        session_id: str,
        offer_sdp: str,
        source: str | None,
        via: str,
        client: Client | None = None,
    ) -> PeerHandle:
        session, participant = await self._media_session(principal, session_id)
        if source is None:
            # WHEP's default: the session's field participant (staff or signer).
            source = next(
                (
                    p.id
                    for p in await self.sessions.participants(session_id)
                    if p.role is FIELD_ROLE[session.kind]
                ),
                None,
            )
        elif source == participant.id:
            raise Conflict("A participant cannot watch itself.", code="self_subscription")
        else:
            found = await self.sessions.participant(source)
            if found is None or found.session_id != session_id:
                raise NotFound("No such participant in this session.", code="participant_not_found")
        handle = await self.media.subscribe(session_id, participant.id, offer_sdp, source)
        if client is not None:
            client.viewers.add(handle.resource_id)
        await self.sessions.record(
            session_id,
            "media.watching",
            principal.actor,
            {
                "participant_id": participant.id,
                "source": source,
                "resource_id": handle.resource_id,
                "via": via,
            },
        )
        await self._mark_joined(participant)
        return handle

    async def owned_resource(self, principal: Principal, session_id: str, resource_id: str) -> None:
        """Raise unless `resource_id` is a media resource of this session the caller may change."""
        session = await self.sessions.get(principal, session_id)
        info = self.media.peer_info(resource_id)
        if info is None or info.session_id != session_id:
            raise NotFound("No such media resource.", code="resource_not_found")
        if principal.invite is not None and info.participant_id != principal.invite.participant_id:
            raise Forbidden("This media resource belongs to another participant.")
        del session

    async def trickle(
        self, principal: Principal, session_id: str, resource_id: str, sdpfrag: str, if_match: str | None
    ) -> str:
        await self.owned_resource(principal, session_id, resource_id)
        return await self.media.add_ice_candidates(resource_id, sdpfrag, if_match)

    async def stop(self, principal: Principal, session_id: str, resource_id: str) -> None:
        await self.owned_resource(principal, session_id, resource_id)
        await self.media.delete(resource_id)

    async def end(self, principal: Principal, session_id: str) -> Session:
        session = await self.sessions.end(principal, session_id)
        await self.close_media(session_id)
        return session

    async def close_media(self, session_id: str) -> None:
        """After a session ended (by the officer, or a rejected identity): no more media, and every
        recording sealed. Clients hear of the end from the trail's state change."""
        await self.media.end_session(session_id)
        await self.recorder.stop_session(session_id)
        if self.observer is not None:
            await self.observer.session_closed(session_id)

    def record_later(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Append a server event from a synchronous callback (media, recorder)."""
        self._spawn(self.sessions.record(session_id, event_type, "server", data))

    def on_peer_closed(self, event: PeerEvent) -> None:
        """Called by the media engine (synchronously) whenever a peer goes away."""
        room = self._rooms.get(event.session_id)
        if room is not None:
            for client in room.clients:
                client.viewers.discard(event.resource_id)
                if client.publisher == event.resource_id:
                    client.publisher = None
            if room.publishing.get(event.participant_id) == event.resource_id:
                del room.publishing[event.participant_id]
                self._spawn(self._presence_by_id(event.session_id, event.participant_id))
        if event.reason in ("session_ended", "shutdown"):
            return
        kind = "media.unpublished" if event.role == "publisher" else "media.stopped_watching"
        self._spawn(
            self.sessions.record(
                event.session_id,
                kind,
                "server",
                {
                    "participant_id": event.participant_id,
                    "resource_id": event.resource_id,
                    "reason": event.reason,
                },
            )
        )

    # -- presence -----------------------------------------------------------------------------------

    async def join(self, client: Client, device: dict[str, Any] | None) -> list[dict[str, Any]]:
        room = self._rooms[client.session_id]
        room.clients.add(client)
        await self._mark_joined(client.participant, device)
        await self.sessions.record(
            client.session_id,
            "participant.joined",
            client.principal.actor,
            {
                "participant_id": client.participant.id,
                "role": client.participant.role.value,
                "device": device,
            },
        )
        # The joiner learns the roster from its welcome; everyone else hears of the joiner.
        self._presence(client.session_id, client.participant, exclude=client)
        return await self.roster(client.session_id)

    async def leave(self, client: Client) -> None:
        room = self._rooms.get(client.session_id)
        if room is not None:
            room.clients.discard(client)
        for resource_id in [*client.viewers, *([client.publisher] if client.publisher else [])]:
            with contextlib.suppress(Exception):
                await self.media.delete(resource_id)
        client.viewers.clear()
        client.publisher = None
        if not self._online(client.session_id, client.participant.id):
            async with self.sessions.repo.write() as tx:
                await tx.update_participant(client.participant.id, left_at=time.time())
            with contextlib.suppress(NotFound):
                await self.sessions.record(
                    client.session_id,
                    "participant.left",
                    client.principal.actor,
                    {"participant_id": client.participant.id},
                )
        self._presence(client.session_id, client.participant)
        if room is not None and not room.clients and not room.publishing:
            self._rooms.pop(client.session_id, None)

    async def roster(self, session_id: str) -> list[dict[str, Any]]:
        return [self._view(session_id, p) for p in await self.sessions.participants(session_id)]

    def _online(self, session_id: str, participant_id: str) -> bool:
        room = self._rooms.get(session_id)
        return room is not None and any(c.participant.id == participant_id for c in room.clients)

    def _view(self, session_id: str, participant: Participant) -> dict[str, Any]:
        room = self._rooms.get(session_id)
        return {
            "id": participant.id,
            "role": participant.role.value,
            "name": participant.name,
            "online": self._online(session_id, participant.id),
            "publishing": room is not None and participant.id in room.publishing,
        }

    def send_to(self, session_id: str, participant_id: str, message: dict[str, Any]) -> int:
        """Send to every signaling connection of one participant; returns how many got it."""
        room = self._rooms.get(session_id)
        clients = [c for c in room.clients if c.participant.id == participant_id] if room else []
        for client in clients:
            client.send(message)
        return len(clients)

    def _presence(self, session_id: str, participant: Participant, exclude: Client | None = None) -> None:
        room = self._rooms.get(session_id)
        if room is None:
            return
        message = {"type": "presence", "participant": self._view(session_id, participant)}
        for client in room.clients:
            if client is not exclude:
                client.send(message)

    async def _presence_by_id(self, session_id: str, participant_id: str) -> None:
        participant = await self.sessions.participant(participant_id)
        if participant is not None:
            self._presence(session_id, participant)

    async def _mark_joined(self, participant: Participant, device: dict[str, Any] | None = None) -> None:
        if participant.joined_at is None or device is not None:
            async with self.sessions.repo.write() as tx:
                await tx.update_participant(
                    participant.id, joined_at=participant.joined_at or time.time(), device=device
                )

    # -- housekeeping -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("conference task failed", exc_info=task.exception())

    async def close(self) -> None:
        """Close all media, then wait for the audit writes it triggered."""
        for room in list(self._rooms.values()):
            for client in list(room.clients):
                client.send({"type": "session", "state": "server_shutdown"})
        await self.media.close()
        await self.recorder.close()
        if self.observer is not None:
            await self.observer.close()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._rooms.clear()
