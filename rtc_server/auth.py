"""Credentials: scrypt password hashes, opaque bearer tokens stored as SHA-256, login throttling.

Bearer tokens carry 256 bits of randomness, so a plain SHA-256 is enough to store them (nothing to
brute-force); passwords are low-entropy and get scrypt. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

# scrypt at n=2**15, r=8 costs about 32 MiB and tens of ms: run it in an executor, never on the loop.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 128 * SCRYPT_R * SCRYPT_N * 2

OFFICER_TOKEN_PREFIX = "rtco_"
INVITE_TOKEN_PREFIX = "rtci_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Verifying against this when the username is unknown keeps the response time the same either way,
# so timing does not reveal which usernames exist.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_password_strength(password: str) -> str | None:
    """A reason the password is unacceptable, or None."""
    if len(password) < 10:
        return "must be at least 10 characters"
    if len(password) > 1024:
        return "must be at most 1024 characters"
    return None


@dataclass
class _Window:
    failures: deque[float]
    blocked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins per key (username, client address) in a sliding window.

    Memory is bounded: the least recently touched keys are forgotten beyond `max_keys`.
    """

    def __init__(self, max_failures: int, window_s: float, max_keys: int = 10000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def retry_after(self, keys: list[str], now: float | None = None) -> float:
        """Seconds until any of `keys` may try again; 0 when none is blocked."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            window = self._windows.get(key)
            if window is not None and window.blocked_until > now:
                wait = max(wait, window.blocked_until - now)
        return wait

    def failure(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            window = self._windows.pop(key, None) or _Window(deque())
            self._windows[key] = window
            window.failures.append(now)
            while window.failures and window.failures[0] <= now - self.window_s:
                window.failures.popleft()
            if len(window.failures) >= self.max_failures:
                window.blocked_until = now + self.window_s
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)

    def success(self, keys: list[str]) -> None:
        for key in keys[:1]:  # only the username is forgiven; an address that guesses stays counted
            self._windows.pop(key, None)
