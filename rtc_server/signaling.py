"""The web client's signaling protocol: typed messages and their validation. No I/O.

One WebSocket per browser per session: `GET /api/v1/sessions/{id}/ws`. Browsers cannot set headers on a
WebSocket, so the first message authenticates (the token never appears in a URL or a log).
Every message is a JSON object with a "type". Client -> server:

  {"type": "hello", "token": "<invite or officer token>", "device"?: {...}}   must come first
  {"type": "publish", "sdp": "<offer>"}                -> "published"   (camera/microphone, sendonly)
  {"type": "unpublish"}                                -> "unpublished"
  {"type": "subscribe", "ref": "<client id>", "participant_id": "<whom>", "sdp": "<recvonly offer>"}
                                                      -> "subscribed" (one peer connection per remote
                                                         participant: subscriptions come and go as
                                                         people join and leave, without touching others)
  {"type": "unsubscribe", "resource_id": "..."}        -> "unsubscribed"
  {"type": "location", "latitude": f, "longitude": f, "accuracy"?: f}   -> audit event participant.location
  {"type": "ping"}                                     -> "pong"

Server -> client:

  {"type": "welcome", "participant_id", "role", "session": {id, kind, title, state},
   "participants": [{"id", "role", "name", "online", "publishing"}], "ice_servers": [...]}
  {"type": "published", "resource_id", "sdp"}        answer to publish
  {"type": "subscribed", "ref", "resource_id", "sdp", "participant_id"}
  {"type": "unsubscribed", "resource_id"} / {"type": "unpublished"}
  {"type": "presence", "participant": {...same shape as in welcome...}}   someone joined, left,
                                                      started or stopped publishing
  {"type": "event", "event": {...audit event...}}     officers only: the session's trail as it grows
  {"type": "session", "state": "..."}                 the session changed state (ended: media stops)
  {"type": "hint", "hint": "too_dark"|"blurred"|"frozen"|"covered", "active": bool,
   "message": {"en": "...", "zh": "..."}}             inspections, to the staff's own connections only:
                                                      a picture-quality hint turned on or off (show
                                                      the message while active); the trail has it
                                                      as a quality.hint event
  {"type": "error", "code", "message", "ref"?}        a bad message; the connection stays open
  {"type": "pong"}
  {"type": "location_saved"}                          the location landed in the audit trail
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BYTES = 256 * 1024
MAX_SDP_CHARS = 64 * 1024


class SignalingError(Exception):
    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def message_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


@dataclass(frozen=True)
class Hello:
    token: str
    device: dict[str, Any] | None


@dataclass(frozen=True)
class Publish:
    sdp: str


@dataclass(frozen=True)
class Unpublish:
    pass


@dataclass(frozen=True)
class Subscribe:
    ref: str
    participant_id: str
    sdp: str


@dataclass(frozen=True)
class Unsubscribe:
    resource_id: str


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    accuracy: float | None


@dataclass(frozen=True)
class Ping:
    pass


ClientMessage = Hello | Publish | Unpublish | Subscribe | Unsubscribe | Location | Ping


def _str(obj: dict[str, Any], key: str, max_len: int, ref: str | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise SignalingError(
            "invalid_message", f"'{key}' must be a non-empty string of at most {max_len} chars.", ref
        )
    return value


def _num(obj: dict[str, Any], key: str, low: float, high: float, required: bool = True) -> float | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise SignalingError("invalid_message", f"'{key}' must be a number from {low} to {high}.")
    return float(value)


def parse(raw: str | bytes) -> ClientMessage:
    """Parse one client message or raise SignalingError saying what is wrong with it."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise SignalingError("message_too_large", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SignalingError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise SignalingError("invalid_message", "A message must be a JSON object.")
    kind = obj.get("type")
    ref = obj.get("ref") if isinstance(obj.get("ref"), str) else None
    if kind == "hello":
        device = obj.get("device")
        if device is not None and (not isinstance(device, dict) or len(json.dumps(device)) > 2048):
            raise SignalingError("invalid_message", "'device' must be an object under 2 KiB.")
        return Hello(token=_str(obj, "token", 512), device=device)
    if kind == "publish":
        return Publish(sdp=_str(obj, "sdp", MAX_SDP_CHARS))
    if kind == "unpublish":
        return Unpublish()
    if kind == "subscribe":
        ref_value = _str(obj, "ref", 64)
        return Subscribe(
            ref=ref_value,
            participant_id=_str(obj, "participant_id", 64, ref_value),
            sdp=_str(obj, "sdp", MAX_SDP_CHARS, ref_value),
        )
    if kind == "unsubscribe":
        return Unsubscribe(resource_id=_str(obj, "resource_id", 128))
    if kind == "location":
        lat = _num(obj, "latitude", -90, 90)
        lon = _num(obj, "longitude", -180, 180)
        assert lat is not None and lon is not None
        return Location(latitude=lat, longitude=lon, accuracy=_num(obj, "accuracy", 0, 1e7, required=False))
    if kind == "ping":
        return Ping()
    raise SignalingError("unknown_type", f"Unknown message type {kind!r}.", ref)
