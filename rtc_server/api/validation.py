"""Reading and checking request input. Every problem becomes a 400/415 with a message naming the field."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rtc_server.errors import BadRequest, Unauthorized, UnsupportedMediaType


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.", code="expected_json")
    raw = await request.read()
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(value, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return value


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.", code="missing_token")
    return token.strip()


class Fields:
    """Typed accessors over a JSON object that reject unknown keys and wrong types by name."""

    def __init__(self, obj: dict[str, Any], where: str = "") -> None:
        self.obj = obj
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def reject_unknown(self, *known: str) -> None:
        unknown = sorted(set(self.obj) - set(known))
        if unknown:
            raise BadRequest(f"Unknown field {self._name(unknown[0])!r}.", code="unknown_field")

    def string(self, key: str, *, required: bool = True, max_len: int = 200, min_len: int = 1) -> str | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise BadRequest(f"Field {self._name(key)!r} is required.", code="missing_field")
            return None
        if not isinstance(value, str):
            raise BadRequest(f"Field {self._name(key)!r} must be a string.", code="invalid_field")
        value = value.strip()
        if not min_len <= len(value) <= max_len:
            raise BadRequest(
                f"Field {self._name(key)!r} must be {min_len}-{max_len} characters.", code="invalid_field"
            )
        return value

    def required_string(self, key: str, *, max_len: int = 200) -> str:
        value = self.string(key, max_len=max_len)
        assert value is not None
        return value

    def integer(self, key: str, *, minimum: int = 0, maximum: int = 10**9) -> int | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise BadRequest(
                f"Field {self._name(key)!r} must be an integer from {minimum} to {maximum}.",
                code="invalid_field",
            )
        return value

    def boolean(self, key: str) -> bool:
        value = self.obj.get(key)
        if not isinstance(value, bool):
            raise BadRequest(f"Field {self._name(key)!r} must be true or false.", code="invalid_field")
        return value

    def object(self, key: str, *, max_bytes: int = 4096) -> dict[str, Any] | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadRequest(f"Field {self._name(key)!r} must be an object.", code="invalid_field")
        if len(json.dumps(value)) > max_bytes:
            raise BadRequest(
                f"Field {self._name(key)!r} is larger than {max_bytes} bytes.", code="invalid_field"
            )
        return value

    def array(self, key: str, *, max_items: int) -> list[Any]:
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise BadRequest(f"Field {self._name(key)!r} must be an array.", code="invalid_field")
        if len(value) > max_items:
            raise BadRequest(
                f"Field {self._name(key)!r} has more than {max_items} entries.", code="invalid_field"
            )
        return value


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, read until its end (a body may arrive in several TCP segments on a slow
    link); None when it is larger than `limit`, so the caller can answer 413 with its own code."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
