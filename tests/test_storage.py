"""Storage: migrations build exactly the schema the queries use, in WAL mode, and are versioned."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from rtc_server.storage import open_database
from rtc_server.storage.migrations import LATEST_VERSION
from rtc_server.storage.schema import metadata


async def test_migrations_match_schema_and_use_wal(tmp_path: Path) -> None:
    db = await open_database(tmp_path)
    try:
        async with db.engine.connect() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
            assert mode == "wal"

            def columns(sync_conn: sa.Connection) -> dict[str, set[str]]:
                inspector = sa.inspect(sync_conn)
                return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}

            actual = await conn.run_sync(columns)
            versions = [r[0] for r in await conn.execute(sa.text("SELECT version FROM schema_migrations"))]
        assert versions == [LATEST_VERSION]
        for table in metadata.sorted_tables:
            assert actual[table.name] == {c.name for c in table.columns}, table.name
    finally:
        await db.close()


async def test_reopening_applies_nothing_and_newer_schema_is_refused(tmp_path: Path) -> None:
    db = await open_database(tmp_path)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)"))
    await db.close()
    with pytest.raises(RuntimeError, match="newer"):
        await open_database(tmp_path)
