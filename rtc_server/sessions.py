"""Sessions: creating inspections and signings, invites, state changes and the audit trail they write.

No HTTP here: handlers validate transport concerns and call this service with plain values.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtc_server import auth, documents
from rtc_server.accounts import Principal
from rtc_server.config import Config
from rtc_server.errors import BadRequest, Conflict, Forbidden, NotFound
from rtc_server.eventbus import EventBus
from rtc_server.lifecycle import Action, State, allowed_actions, is_active, next_state
from rtc_server.models import (
    ChecklistItem,
    Document,
    Invite,
    Participant,
    ParticipantRole,
    Role,
    Session,
    SessionKind,
    User,
    iso,
)
from rtc_server.storage import Repository
from rtc_server.storage.repository import Tx
from signing import id_number_hash

log = logging.getLogger(__name__)

FIELD_ROLE = {SessionKind.INSPECTION: ParticipantRole.STAFF, SessionKind.SIGNING: ParticipantRole.SIGNER}


@dataclass(frozen=True)
class ItemSpec:
    sku: str
    description: str | None = None
    expected_qty: int | None = None


@dataclass(frozen=True)
class SignerSpec:
    name: str
    id_number: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class IssuedInvite:
    token: str
    url: str
    role: ParticipantRole
    participant_id: str
    expires_at: float

    def view(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "url": self.url,
            "participant_id": self.participant_id,
            "expires_at": iso(self.expires_at),
        }


def _mask(value: str) -> str:
    return "*" * max(0, len(value) - 4) + value[-4:]


class SessionService:
    def __init__(
        self, repo: Repository, config: Config, bus: EventBus, clock: Callable[[], float] = time.time
    ) -> None:
        self.repo = repo
        self.config = config
        self.bus = bus
        self.clock = clock
        self.documents_dir = config.data_path / "documents"

    # -- creation -----------------------------------------------------------------------------------

    async def create_inspection(
        self, principal: Principal, title: str, site: dict[str, Any] | None, items: list[ItemSpec]
    ) -> tuple[Session, dict[str, IssuedInvite]]:
        user = principal.require_user(Role.OFFICER)
        now = self.clock()
        session = Session(
            id=_new_id("ses"),
            kind=SessionKind.INSPECTION,
            title=title,
            state=State.WAITING,
            created_by=user.id,
            created_at=now,
            updated_at=now,
            ended_at=None,
            details={"site": site} if site else {},
        )
        checklist = [
            ChecklistItem(
                session_id=session.id,
                position=i,
                sku=item.sku,
                description=item.description,
                expected_qty=item.expected_qty,
            )
            for i, item in enumerate(items)
        ]
        async with self.repo.write() as tx:
            await tx.insert_session(session)
            await tx.insert_checklist(checklist)
            await self._event(
                tx,
                session.id,
                "session.created",
                principal.actor,
                {"kind": session.kind.value, "title": title, "site": site, "items": [i.sku for i in items]},
            )
            invite = await self._issue_invite(tx, session, ParticipantRole.STAFF, principal, None, "Staff")
        return session, {"staff": invite}

    async def create_signing(
        self, principal: Principal, title: str | None, signer: SignerSpec, filename: str, pdf: bytes
    ) -> tuple[Session, dict[str, IssuedInvite]]:
        user = principal.require_user(Role.OFFICER)
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, documents.inspect_pdf, pdf)
        path = await loop.run_in_executor(
            None, documents.store_blob, self.documents_dir, pdf, info.sha256, ".pdf"
        )
        now = self.clock()
        signer_view: dict[str, Any] = {"name": signer.name, "phone": signer.phone, "email": signer.email}
        if signer.id_number:
            # The ID number is kept only as a salted hash (and its last digits for the officer to
            # recognise): the one-shot certificate will carry the hash, never the number.
            salt = secrets.token_bytes(16)
            signer_view["id_number_masked"] = _mask(signer.id_number)
            signer_view["id_number_salt"] = salt.hex()
            signer_view["id_number_sha256"] = id_number_hash(signer.id_number, salt)
        session = Session(
            id=_new_id("ses"),
            kind=SessionKind.SIGNING,
            title=title or f"Signing: {filename}",
            state=State.WAITING,
            created_by=user.id,
            created_at=now,
            updated_at=now,
            ended_at=None,
            details={"signer": signer_view, "document": {"sha256": info.sha256, "pages": info.pages}},
        )
        document = Document(
            id=_new_id("doc"),
            session_id=session.id,
            purpose="original",
            filename=filename,
            sha256=info.sha256,
            size=info.size,
            path=str(path),
            created_at=now,
        )
        async with self.repo.write() as tx:
            await tx.insert_session(session)
            await tx.insert_document(document)
            await self._event(
                tx,
                session.id,
                "session.created",
                principal.actor,
                {
                    "kind": session.kind.value,
                    "title": session.title,
                    "signer": {k: v for k, v in signer_view.items() if k != "id_number_salt"},
                    "document": {
                        "filename": filename,
                        "sha256": info.sha256,
                        "size": info.size,
                        "pages": info.pages,
                    },
                },
            )
            invite = await self._issue_invite(
                tx, session, ParticipantRole.SIGNER, principal, None, signer.name
            )
        return session, {"signer": invite}

    async def create_invite(
        self, principal: Principal, session_id: str, role: ParticipantRole
    ) -> IssuedInvite:
        principal.require_user(Role.OFFICER)
        async with self.repo.write() as tx:
            session = await self._session_for(tx, principal, session_id)
            if not is_active(session.state):
                raise Conflict("The session has ended; no new invites.", code="session_ended")
            field_role = FIELD_ROLE[session.kind]
            if role not in (field_role, ParticipantRole.OBSERVER):
                raise BadRequest(
                    f"A {session.kind.value} has no {role.value} role; use {field_role.value} or observer.",
                    code="invalid_role",
                )
            existing = None
            if role is field_role:
                # The field participant is one person: a new link re-admits the same participant.
                existing = next((p for p in await tx.participants(session.id) if p.role is field_role), None)
            name = existing.name if existing else "Observer"
            return await self._issue_invite(tx, session, role, principal, existing, name)

    async def _issue_invite(
        self,
        tx: Tx,
        session: Session,
        role: ParticipantRole,
        principal: Principal,
        participant: Participant | None,
        name: str,
    ) -> IssuedInvite:
        now = self.clock()
        if participant is None:
            participant = Participant(
                id=_new_id("par"), session_id=session.id, role=role, name=name, created_at=now
            )
            await tx.insert_participant(participant)
        token = auth.new_token(auth.INVITE_TOKEN_PREFIX)
        invite = Invite(
            id=_new_id("inv"),
            session_id=session.id,
            participant_id=participant.id,
            role=role,
            created_by=principal.user.id if principal.user else "",
            created_at=now,
            expires_at=now + self.config.auth.invite_ttl_s,
        )
        await tx.insert_invite(invite, auth.token_hash(token))
        await self._event(
            tx,
            session.id,
            "invite.created",
            principal.actor,
            {
                "role": role.value,
                "participant_id": participant.id,
                "invite_id": invite.id,
                "expires_at": iso(invite.expires_at),
            },
        )
        # The token rides in the URL fragment: browsers never send it to the server or in Referer.
        url = f"{self.config.base_url}/join/{session.id}#{token}"
        return IssuedInvite(
            token=token, url=url, role=role, participant_id=participant.id, expires_at=invite.expires_at
        )

    # -- reading ------------------------------------------------------------------------------------

    async def get(self, principal: Principal, session_id: str) -> Session:
        async with self.repo.read() as tx:
            return await self._session_for(tx, principal, session_id)

    async def detail(self, principal: Principal, session_id: str) -> dict[str, Any]:
        principal.require_user(Role.OFFICER)
        async with self.repo.read() as tx:
            session = await self._session_for(tx, principal, session_id)
            participants = await tx.participants(session.id)
            docs = await tx.documents(session.id)
            items = await tx.checklist(session.id) if session.kind is SessionKind.INSPECTION else []
            snapshots = (
                await tx.events_of_type(session.id, "snapshot.taken")
                if session.kind is SessionKind.INSPECTION
                else []
            )
        view = session_summary(session)
        view["participants"] = [p.view() for p in participants]
        view["documents"] = [d.view() for d in docs]
        view["recordings"] = []
        view["allowed_actions"] = allowed_actions(session.kind, session.state)
        if session.kind is SessionKind.INSPECTION:
            view["site"] = session.details.get("site")
            view["items"] = [i.view() for i in items]
            view["stills"] = [still_view(session.id, e["data"]) for e in snapshots]
        else:
            signer = dict(session.details.get("signer", {}))
            signer.pop("id_number_salt", None)
            signer.pop("id_number_sha256", None)
            view["signer"] = signer
            view["document"] = session.details.get("document")
            view["steps"] = signing_steps(session)
        return view

    async def list_sessions(
        self, principal: Principal, *, state: str | None, kind: str | None, limit: int, before: float | None
    ) -> list[dict[str, Any]]:
        user = principal.require_user(Role.OFFICER)
        owner = None if user.role is Role.ADMIN else user.id
        async with self.repo.read() as tx:
            found = await tx.sessions(created_by=owner, state=state, kind=kind, limit=limit, before=before)
        return [session_summary(s) for s in found]

    async def participant(self, participant_id: str) -> Participant | None:
        async with self.repo.read() as tx:
            return await tx.participant(participant_id)

    async def documents(self, session_id: str) -> list[Document]:
        async with self.repo.read() as tx:
            return await tx.documents(session_id)

    async def participants(self, session_id: str) -> list[Participant]:
        async with self.repo.read() as tx:
            return await tx.participants(session_id)

    async def officer_participant(self, session_id: str, user: User) -> Participant:
        """The officer's own participant in a session, created the first time they join its media."""
        async with self.repo.write() as tx:
            for p in await tx.participants(session_id):
                if p.role is ParticipantRole.OFFICER and p.name == user.username:
                    return p
            participant = Participant(
                id=_new_id("par"),
                session_id=session_id,
                role=ParticipantRole.OFFICER,
                name=user.username,
                created_at=self.clock(),
            )
            await tx.insert_participant(participant)
            await self._event(
                tx,
                session_id,
                "participant.added",
                f"user:{user.username}",
                {"participant_id": participant.id, "role": "officer"},
            )
            return participant

    async def events(self, principal: Principal, session_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        principal.require_user(Role.OFFICER)
        async with self.repo.read() as tx:
            await self._session_for(tx, principal, session_id)
            return await tx.events(session_id, after_seq)

    async def document(self, principal: Principal, session_id: str) -> Document:
        """The contract: the signed PDF once there is one, else the original."""
        if principal.invite is not None and principal.invite.role is not ParticipantRole.SIGNER:
            raise Forbidden("Only the officer and the signer may read the contract.")
        async with self.repo.read() as tx:
            session = await self._session_for(tx, principal, session_id)
            if session.kind is not SessionKind.SIGNING:
                raise NotFound("This session is not a signing.", code="not_a_signing")
            docs = {d.purpose: d for d in await tx.documents(session_id)}
        return docs.get("signed") or docs["original"]

    # -- state changes ------------------------------------------------------------------------------

    async def end(self, principal: Principal, session_id: str) -> Session:
        principal.require_user(Role.OFFICER)
        return await self.transition(principal, session_id, Action.END, "session.ended", {})

    async def transition(
        self,
        principal: Principal | None,
        session_id: str,
        action: Action,
        event_type: str,
        data: dict[str, Any],
        details: dict[str, Any] | None = None,
        document: Document | None = None,
    ) -> Session:
        """Apply `action` and append its event in one transaction; 409 when the state machine refuses.

        `document` (e.g. the signed contract) is stored in the same transaction, so a document row
        exists exactly when the state change that produced it did."""
        actor = principal.actor if principal else "server"
        async with self.repo.write() as tx:
            session = (
                await self._session_for(tx, principal, session_id)
                if principal
                else await self._session(tx, session_id)
            )
            target = next_state(session.kind, session.state, action)
            now = self.clock()
            merged = {**session.details, **(details or {})}
            await tx.update_session(
                session_id,
                state=target.value,
                now=now,
                ended_at=now if target is State.ENDED else None,
                details=merged if details else None,
            )
            if document is not None:
                await tx.insert_document(document)
            await self._event(
                tx, session_id, event_type, actor, {**data, "from": session.state, "to": target.value}
            )
            updated = await tx.session(session_id)
        assert updated is not None
        return updated

    async def record(
        self,
        session_id: str,
        event_type: str,
        actor: str,
        data: dict[str, Any],
        document: Document | None = None,
    ) -> dict[str, Any]:
        """Append an event that changes no state (a code seen, a participant joined); `document`
        (a still, a report) is stored in the same transaction as the event that announces it."""
        async with self.repo.write() as tx:
            await self._session(tx, session_id)
            if document is not None:
                await tx.insert_document(document)
            return await self._event(tx, session_id, event_type, actor, data)

    async def record_sighting(
        self, session_id: str, sku: str, seen_at: float, actor: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A checklist item seen: its count and the `code.detected` event in one transaction; the
        event's `count` is the item's stored count."""
        async with self.repo.write() as tx:
            await self._session(tx, session_id)
            count = await tx.count_checklist_sighting(session_id, sku, seen_at)
            if count is not None:
                data = {**data, "count": count}
            return await self._event(tx, session_id, "code.detected", actor, data)

    async def _event(
        self, tx: Tx, session_id: str, event_type: str, actor: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        event = await tx.append_event(session_id, iso(self.clock()) or "", event_type, actor, data)
        # Published after the caller's transaction commits would be stricter; subscribers re-read the
        # trail by seq on reconnect, so an event seen early and then rolled back is re-synchronised.
        self.bus.publish(session_id, event)
        return event

    # -- access -------------------------------------------------------------------------------------

    async def _session(self, tx: Tx, session_id: str) -> Session:
        session = await tx.session(session_id)
        if session is None:
            raise NotFound("No such session.", code="session_not_found")
        return session

    async def _session_for(self, tx: Tx, principal: Principal, session_id: str) -> Session:
        session = await self._session(tx, session_id)
        if principal.user is not None:
            if principal.user.role is not Role.ADMIN and session.created_by != principal.user.id:
                raise Forbidden("This session belongs to another officer.")
        elif principal.invite is None or principal.invite.session_id != session.id:
            raise Forbidden("This invite is for another session.")
        return session

    async def session_counts(self) -> dict[tuple[str, str], int]:
        async with self.repo.read() as tx:
            return await tx.count_sessions_by_state()


def session_summary(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "kind": session.kind.value,
        "title": session.title,
        "state": session.state,
        "created_by": session.created_by,
        "created_at": iso(session.created_at),
        "updated_at": iso(session.updated_at),
        "ended_at": iso(session.ended_at),
    }


def still_view(session_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """A still as the API lists it, from its `snapshot.taken` event."""
    return {
        "id": data["still_id"],
        "sha256": data["sha256"],
        "ts": data["ts"],
        "url": f"/api/v1/inspections/{session_id}/snapshots/{data['still_id']}",
        "width": data["width"],
        "height": data["height"],
        "media_time": data["media_time"],
        "participant_id": data.get("participant_id"),
    }


def signing_steps(session: Session) -> list[dict[str, Any]]:
    details = session.details
    steps = []
    for name in ("identity", "consent", "signature"):
        step = details.get(name)
        steps.append(
            {
                "step": name,
                "status": step.get("status", "done") if step else "pending",
                **({k: v for k, v in step.items() if k != "status"} if step else {}),
            }
        )
    return steps


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"
