"""Engine set-up: SQLite in WAL mode by default; any SQLAlchemy async URL otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rtc_server.storage.migrations import migrate

log = logging.getLogger(__name__)


@dataclass
class Database:
    engine: AsyncEngine
    url: str

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer commits; NORMAL sync is durable across process crashes.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


async def open_database(data_dir: Path, url: str = "") -> Database:
    """Open (creating if needed) the database and bring its schema up to date."""
    if not url:
        # The caller (services start-up) creates data_dir; this runs once before serving.
        url = f"sqlite+aiosqlite:///{data_dir / 'rtc.sqlite3'}"
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    async with engine.begin() as conn:
        applied = await migrate(conn)
    if applied:
        log.info("database migrated to schema version %s", applied[-1])
    return Database(engine=engine, url=url)
