"""The repository: every query the server makes, on one connection per unit of work.

`async with repo.write() as tx:` is one transaction; `async with repo.read() as tx:` a read-only one.
SQLite has a single writer, so writes are serialised in-process rather than left to fail with
SQLITE_BUSY; PostgreSQL needs no such lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rtc_server import audit
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
)
from rtc_server.storage import schema as t
from rtc_server.storage.db import Database


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _user(row: sa.RowMapping) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _session(row: sa.RowMapping) -> Session:
    return Session(
        id=row["id"],
        kind=SessionKind(row["kind"]),
        title=row["title"],
        state=row["state"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        details=json.loads(row["details"]),
    )


def _participant(row: sa.RowMapping) -> Participant:
    return Participant(
        id=row["id"],
        session_id=row["session_id"],
        role=ParticipantRole(row["role"]),
        name=row["name"],
        created_at=row["created_at"],
        joined_at=row["joined_at"],
        left_at=row["left_at"],
        device=json.loads(row["device"]) if row["device"] else None,
    )


def _invite(row: sa.RowMapping) -> Invite:
    return Invite(
        id=row["id"],
        session_id=row["session_id"],
        participant_id=row["participant_id"],
        role=ParticipantRole(row["role"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


def _event(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "ts": row["ts"],
        "type": row["type"],
        "actor": row["actor"],
        "data": json.loads(row["data"]),
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


class Tx:
    """Queries bound to one connection (and so one transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- users and tokens ---------------------------------------------------------------------------

    async def user_by_username(self, username: str) -> User | None:
        row = (await self.conn.execute(sa.select(t.users).where(t.users.c.username == username))).mappings()
        first = row.first()
        return _user(first) if first else None

    async def user_by_id(self, user_id: str) -> User | None:
        row = (await self.conn.execute(sa.select(t.users).where(t.users.c.id == user_id))).mappings().first()
        return _user(row) if row else None

    async def insert_user(self, user: User) -> None:
        await self.conn.execute(sa.insert(t.users).values(**user.__dict__))

    async def update_user(self, user_id: str, password_hash: str, role: Role, now: float) -> None:
        await self.conn.execute(
            sa.update(t.users)
            .where(t.users.c.id == user_id)
            .values(password_hash=password_hash, role=role.value, updated_at=now)
        )

    async def insert_token(self, token_hash: str, user_id: str, now: float, expires_at: float) -> None:
        await self.conn.execute(
            sa.insert(t.auth_tokens).values(
                token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
            )
        )

    async def user_for_token(self, token_hash: str, now: float) -> User | None:
        query = (
            sa.select(t.users)
            .join(t.auth_tokens, t.auth_tokens.c.user_id == t.users.c.id)
            .where(t.auth_tokens.c.token_hash == token_hash, t.auth_tokens.c.expires_at > now)
        )
        row = (await self.conn.execute(query)).mappings().first()
        return _user(row) if row else None

    async def delete_token(self, token_hash: str) -> None:
        await self.conn.execute(sa.delete(t.auth_tokens).where(t.auth_tokens.c.token_hash == token_hash))

    async def purge_expired_tokens(self, now: float) -> int:
        result = await self.conn.execute(sa.delete(t.auth_tokens).where(t.auth_tokens.c.expires_at <= now))
        return int(result.rowcount or 0)

    # -- sessions -----------------------------------------------------------------------------------

    async def insert_session(self, session: Session) -> None:
        values = dict(session.__dict__)
        values["kind"] = session.kind.value
        values["details"] = _json(session.details)
        await self.conn.execute(sa.insert(t.sessions).values(**values))

    async def session(self, session_id: str) -> Session | None:
        query = sa.select(t.sessions).where(t.sessions.c.id == session_id)
        row = (await self.conn.execute(query)).mappings().first()
        return _session(row) if row else None

    async def sessions(
        self, *, created_by: str | None, state: str | None, kind: str | None, limit: int, before: float | None
    ) -> list[Session]:
        query = sa.select(t.sessions).order_by(t.sessions.c.created_at.desc(), t.sessions.c.id).limit(limit)
        if created_by is not None:
            query = query.where(t.sessions.c.created_by == created_by)
        if state is not None:
            query = query.where(t.sessions.c.state == state)
        if kind is not None:
            query = query.where(t.sessions.c.kind == kind)
        if before is not None:
            query = query.where(t.sessions.c.created_at < before)
        return [_session(r) for r in (await self.conn.execute(query)).mappings()]

    async def update_session(
        self,
        session_id: str,
        *,
        state: str,
        now: float,
        ended_at: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if ended_at is not None:
            values["ended_at"] = ended_at
        if details is not None:
            values["details"] = _json(details)
        await self.conn.execute(sa.update(t.sessions).where(t.sessions.c.id == session_id).values(**values))

    async def count_sessions_by_state(self) -> dict[tuple[str, str], int]:
        query = sa.select(t.sessions.c.kind, t.sessions.c.state, sa.func.count()).group_by(
            t.sessions.c.kind, t.sessions.c.state
        )
        return {(r[0], r[1]): int(r[2]) for r in await self.conn.execute(query)}

    # -- participants and invites -------------------------------------------------------------------

    async def insert_participant(self, participant: Participant) -> None:
        values = dict(participant.__dict__)
        values["role"] = participant.role.value
        values["device"] = _json(participant.device) if participant.device is not None else None
        await self.conn.execute(sa.insert(t.participants).values(**values))

    async def participants(self, session_id: str) -> list[Participant]:
        query = (
            sa.select(t.participants)
            .where(t.participants.c.session_id == session_id)
            .order_by(t.participants.c.created_at, t.participants.c.id)
        )
        return [_participant(r) for r in (await self.conn.execute(query)).mappings()]

    async def participant(self, participant_id: str) -> Participant | None:
        query = sa.select(t.participants).where(t.participants.c.id == participant_id)
        row = (await self.conn.execute(query)).mappings().first()
        return _participant(row) if row else None

    async def update_participant(
        self,
        participant_id: str,
        *,
        joined_at: float | None = None,
        left_at: float | None = None,
        device: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if joined_at is not None:
            values["joined_at"] = joined_at
        if left_at is not None:
            values["left_at"] = left_at
        if device is not None:
            values["device"] = _json(device)
        if values:
            await self.conn.execute(
                sa.update(t.participants).where(t.participants.c.id == participant_id).values(**values)
            )

    async def insert_invite(self, invite: Invite, token_hash: str) -> None:
        values = dict(invite.__dict__)
        values["role"] = invite.role.value
        await self.conn.execute(sa.insert(t.invites).values(token_hash=token_hash, **values))

    async def invite_by_token(self, token_hash: str) -> Invite | None:
        query = sa.select(t.invites).where(t.invites.c.token_hash == token_hash)
        row = (await self.conn.execute(query)).mappings().first()
        return _invite(row) if row else None

    # -- checklist ----------------------------------------------------------------------------------

    async def insert_checklist(self, items: Sequence[ChecklistItem]) -> None:
        if items:
            await self.conn.execute(sa.insert(t.checklist_items), [dict(i.__dict__) for i in items])

    async def checklist(self, session_id: str) -> list[ChecklistItem]:
        query = (
            sa.select(t.checklist_items)
            .where(t.checklist_items.c.session_id == session_id)
            .order_by(t.checklist_items.c.position)
        )
        return [ChecklistItem(**dict(r)) for r in (await self.conn.execute(query)).mappings()]

    async def count_checklist_sighting(self, session_id: str, sku: str, seen_at: float) -> int | None:
        """One more sighting of the item with this SKU (first_seen_at kept from the first); returns
        its new seen_count, or None when the session has no such item."""
        where = sa.and_(t.checklist_items.c.session_id == session_id, t.checklist_items.c.sku == sku)
        await self.conn.execute(
            sa.update(t.checklist_items)
            .where(where)
            .values(
                seen_count=t.checklist_items.c.seen_count + 1,
                first_seen_at=sa.func.coalesce(t.checklist_items.c.first_seen_at, seen_at),
            )
        )
        row = await self.conn.execute(sa.select(t.checklist_items.c.seen_count).where(where))
        count = row.scalar()
        return int(count) if count is not None else None

    # -- documents ----------------------------------------------------------------------------------

    async def insert_document(self, document: Document) -> None:
        await self.conn.execute(sa.insert(t.documents).values(**document.__dict__))

    async def documents(self, session_id: str) -> list[Document]:
        query = (
            sa.select(t.documents)
            .where(t.documents.c.session_id == session_id)
            .order_by(t.documents.c.created_at, t.documents.c.id)
        )
        return [Document(**dict(r)) for r in (await self.conn.execute(query)).mappings()]

    # -- audit trail --------------------------------------------------------------------------------

    async def last_event(self, session_id: str) -> dict[str, Any] | None:
        query = (
            sa.select(t.events)
            .where(t.events.c.session_id == session_id)
            .order_by(t.events.c.seq.desc())
            .limit(1)
        )
        row = (await self.conn.execute(query)).mappings().first()
        return _event(row) if row else None

    async def append_event(
        self, session_id: str, ts: str, type_: str, actor: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        event = audit.make_event(await self.last_event(session_id), ts, type_, actor, data)
        values = dict(event)
        values["data"] = _json(event["data"])
        await self.conn.execute(sa.insert(t.events).values(session_id=session_id, **values))
        return event

    async def events(self, session_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        query = (
            sa.select(t.events)
            .where(t.events.c.session_id == session_id, t.events.c.seq > after_seq)
            .order_by(t.events.c.seq)
        )
        return [_event(r) for r in (await self.conn.execute(query)).mappings()]

    async def events_of_type(self, session_id: str, type_: str) -> list[dict[str, Any]]:
        query = (
            sa.select(t.events)
            .where(t.events.c.session_id == session_id, t.events.c.type == type_)
            .order_by(t.events.c.seq)
        )
        return [_event(r) for r in (await self.conn.execute(query)).mappings()]


class Repository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._write_lock = asyncio.Lock() if db.engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            conn = await stack.enter_async_context(self.db.engine.begin())
            yield Tx(conn)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        async with self.db.engine.connect() as conn:
            yield Tx(conn)
