"""The services one application owns, built and torn down together (tests build them the same way)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from rtc_server.accounts import AccountService
from rtc_server.config import Config
from rtc_server.eventbus import EventBus
from rtc_server.metrics import Metrics
from rtc_server.sessions import SessionService
from rtc_server.storage import Database, Repository, open_database

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    db: Database
    repo: Repository
    bus: EventBus
    metrics: Metrics
    accounts: AccountService
    sessions: SessionService
    ready: bool = False


@contextlib.asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    config.data_path.mkdir(parents=True, exist_ok=True)
    db = await open_database(config.data_path, config.storage.database_url)
    try:
        repo = Repository(db)
        bus = EventBus()
        yield Services(
            config=config,
            db=db,
            repo=repo,
            bus=bus,
            metrics=Metrics(),
            accounts=AccountService(repo, config.auth),
            sessions=SessionService(repo, config, bus),
        )
    finally:
        await db.close()
