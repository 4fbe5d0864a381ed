"""Domain records shared by storage, services and the HTTP layer. Plain data, no behaviour beyond views."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Role(enum.StrEnum):
    OFFICER = "officer"
    ADMIN = "admin"


class ParticipantRole(enum.StrEnum):
    STAFF = "staff"
    SIGNER = "signer"
    OBSERVER = "observer"
    # The back-office user in the session, created when they first join its media.
    OFFICER = "officer"


class SessionKind(enum.StrEnum):
    INSPECTION = "inspection"
    SIGNING = "signing"


def iso(ts: float | None) -> str | None:
    """Wall-clock seconds as RFC 3339 UTC with milliseconds, the one time format of the API."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class User:
    id: str
    username: str
    password_hash: str
    role: Role
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Session:
    id: str
    kind: SessionKind
    title: str
    state: str
    created_by: str
    created_at: float
    updated_at: float
    ended_at: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Participant:
    id: str
    session_id: str
    role: ParticipantRole
    name: str
    created_at: float
    joined_at: float | None = None
    left_at: float | None = None
    device: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role.value,
            "name": self.name,
            "created_at": iso(self.created_at),
            "joined_at": iso(self.joined_at),
            "left_at": iso(self.left_at),
            "device": self.device,
        }


@dataclass(frozen=True)
class Invite:
    id: str
    session_id: str
    participant_id: str
    role: ParticipantRole
    created_by: str
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class ChecklistItem:
    session_id: str
    position: int
    sku: str
    description: str | None
    expected_qty: int | None
    seen_count: int = 0
    first_seen_at: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "sku": self.sku,
            "description": self.description,
            "expected_qty": self.expected_qty,
            "seen_count": self.seen_count,
            "seen": self.seen_count > 0,
            "first_seen_at": iso(self.first_seen_at),
        }


@dataclass(frozen=True)
class Document:
    id: str
    session_id: str
    purpose: str
    filename: str
    sha256: str
    size: int
    path: str
    created_at: float

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "purpose": self.purpose,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "created_at": iso(self.created_at),
        }
