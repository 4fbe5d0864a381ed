"""Back-office accounts and the callers they become: users, logins, bearer tokens, invites."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from rtc_server import auth
from rtc_server.config import AuthConfig
from rtc_server.errors import BadRequest, Forbidden, TooManyRequests, Unauthorized
from rtc_server.models import Invite, Role, User
from rtc_server.storage import Repository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Whoever a request's bearer token belongs to: a back-office user or one invited participant."""

    user: User | None = None
    invite: Invite | None = None

    @property
    def actor(self) -> str:
        if self.user is not None:
            return f"user:{self.user.username}"
        assert self.invite is not None
        return f"participant:{self.invite.participant_id}"

    def require_user(self, *roles: Role) -> User:
        if self.user is None:
            raise Forbidden("This call is for back-office accounts; an invite token cannot make it.")
        if roles and self.user.role not in roles and self.user.role is not Role.ADMIN:
            raise Forbidden(f"This call needs the {' or '.join(r.value for r in roles)} role.")
        return self.user


class AccountService:
    def __init__(self, repo: Repository, config: AuthConfig, clock: Callable[[], float] = time.time) -> None:
        self.repo = repo
        self.config = config
        self.clock = clock
        self.throttle = auth.LoginThrottle(config.login_max_failures, config.login_window_s)

    async def add_user(self, username: str, password: str, role: Role) -> tuple[User, bool]:
        """Create the account, or update its password and role; True when it was created."""
        if (
            not username
            or len(username) > 64
            or not username.replace(".", "").replace("-", "").replace("_", "").replace("@", "").isalnum()
        ):
            raise BadRequest(
                "Usernames are 1-64 letters, digits, '.', '-', '_' or '@'.", code="invalid_username"
            )
        problem = auth.validate_password_strength(password)
        if problem:
            raise BadRequest(f"The password {problem}.", code="weak_password")
        password_hash = await asyncio.get_running_loop().run_in_executor(None, auth.hash_password, password)
        now = self.clock()
        async with self.repo.write() as tx:
            existing = await tx.user_by_username(username)
            if existing is not None:
                await tx.update_user(existing.id, password_hash, role, now)
                user = await tx.user_by_id(existing.id)
                assert user is not None
                return user, False
            user = User(
                id="usr_" + secrets.token_hex(8),
                username=username,
                password_hash=password_hash,
                role=role,
                created_at=now,
                updated_at=now,
            )
            await tx.insert_user(user)
            return user, True

    async def login(self, username: str, password: str, client: str) -> tuple[str, float]:
        """A new bearer token and its expiry; 401 on bad credentials, 429 when throttled."""
        keys = [f"user:{username.lower()}", f"addr:{client}"]
        wait = self.throttle.retry_after(keys)
        if wait > 0:
            raise TooManyRequests("Too many failed logins; try again later.", retry_after_s=int(wait) + 1)
        async with self.repo.read() as tx:
            user = await tx.user_by_username(username)
        stored = user.password_hash if user is not None else auth.DUMMY_PASSWORD_HASH
        ok = await asyncio.get_running_loop().run_in_executor(None, auth.verify_password, password, stored)
        if user is None or not ok:
            self.throttle.failure(keys)
            log.info("failed login for a user from %s", client)
            raise Unauthorized("Wrong username or password.", code="invalid_credentials")
        self.throttle.success(keys)
        token = auth.new_token(auth.OFFICER_TOKEN_PREFIX)
        now = self.clock()
        expires_at = now + self.config.token_ttl_s
        async with self.repo.write() as tx:
            await tx.insert_token(auth.token_hash(token), user.id, now, expires_at)
            await tx.purge_expired_tokens(now)
        return token, expires_at

    async def logout(self, token: str) -> None:
        async with self.repo.write() as tx:
            await tx.delete_token(auth.token_hash(token))

    async def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token; Unauthorized when unknown or expired."""
        now = self.clock()
        digest = auth.token_hash(token)
        async with self.repo.read() as tx:
            if token.startswith(auth.INVITE_TOKEN_PREFIX):
                invite = await tx.invite_by_token(digest)
                if invite is not None and invite.expires_at > now:
                    return Principal(invite=invite)
            else:
                user = await tx.user_for_token(digest, now)
                if user is not None:
                    return Principal(user=user)
        raise Unauthorized("The token is unknown or has expired.", code="invalid_token")
