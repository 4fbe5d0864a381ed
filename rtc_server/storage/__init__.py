"""Persistence: one async repository over SQLAlchemy Core (SQLite by default, PostgreSQL-ready)."""

from rtc_server.storage.db import Database, open_database
from rtc_server.storage.repository import Repository

__all__ = ["Database", "Repository", "open_database"]
