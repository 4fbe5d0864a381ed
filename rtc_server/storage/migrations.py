"""Versioned schema migrations. Each step is portable DDL (SQLite and PostgreSQL); never edit a shipped step,
append a new one. `schema_migrations` records which steps a database has."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# The type names below mean the same on SQLite (by affinity) and PostgreSQL.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "initial schema",
        [
            """CREATE TABLE users (
                id TEXT PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                role TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE auth_tokens (
                token_hash TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id),
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX ix_auth_tokens_expires ON auth_tokens (expires_at)",
            """CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                title TEXT NOT NULL,
                state TEXT NOT NULL,
                created_by TEXT NOT NULL REFERENCES users(id),
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                details TEXT NOT NULL)""",
            "CREATE INDEX ix_sessions_created ON sessions (created_at)",
            """CREATE TABLE participants (
                id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES sessions(id),
                role TEXT NOT NULL,
                name TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                joined_at DOUBLE PRECISION,
                left_at DOUBLE PRECISION,
                device TEXT)""",
            "CREATE INDEX ix_participants_session ON participants (session_id)",
            """CREATE TABLE invites (
                id TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL UNIQUE,
                session_id TEXT NOT NULL REFERENCES sessions(id),
                participant_id TEXT NOT NULL REFERENCES participants(id),
                role TEXT NOT NULL,
                created_by TEXT NOT NULL REFERENCES users(id),
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE checklist_items (
                session_id TEXT NOT NULL REFERENCES sessions(id),
                position INTEGER NOT NULL,
                sku TEXT NOT NULL,
                description TEXT,
                expected_qty INTEGER,
                seen_count INTEGER NOT NULL,
                first_seen_at DOUBLE PRECISION,
                PRIMARY KEY (session_id, position))""",
            """CREATE TABLE events (
                session_id TEXT NOT NULL REFERENCES sessions(id),
                seq INTEGER NOT NULL,
                ts TEXT NOT NULL,
                type TEXT NOT NULL,
                actor TEXT NOT NULL,
                data TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (session_id, seq))""",
            """CREATE TABLE documents (
                id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES sessions(id),
                purpose TEXT NOT NULL,
                filename TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                size INTEGER NOT NULL,
                path TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX ix_documents_session ON documents (session_id)",
        ],
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]


async def applied_versions(conn: AsyncConnection) -> set[int]:
    await conn.execute(
        sa.text(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
    )
    rows = await conn.execute(sa.text("SELECT version FROM schema_migrations"))
    return {int(r[0]) for r in rows}


async def migrate(conn: AsyncConnection) -> list[int]:
    """Apply every missing step in order inside the caller's transaction; return the versions applied."""
    done = await applied_versions(conn)
    newer = max(done, default=0)
    if newer > LATEST_VERSION:
        raise RuntimeError(
            f"database schema version {newer} is newer than this server knows ({LATEST_VERSION}); "
            "refusing to run an older server against it"
        )
    applied = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements:
            await conn.execute(sa.text(statement))
        await conn.execute(
            sa.text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)"),
            {"v": version, "n": name, "t": time.time()},
        )
        applied.append(version)
    return applied
