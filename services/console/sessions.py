"""Sessions: a random id in a signed, HttpOnly, SameSite cookie, the session itself in Redis.

Keeping the session server-side is what makes signing out (or a revoked user) end it at once: the cookie
alone proves nothing once its Redis hash is gone. Each session carries its own CSRF token, which every
form posts back; the sign-in form, before any session exists, uses a double-submit cookie instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.console.settings import Role, User
from shared.bus import as_str
from shared.store import keys

COOKIE = "hotline_session"
LOGIN_CSRF_COOKIE = "hotline_login_csrf"


@dataclass(frozen=True)
class Session:
    session_id: str
    user: str
    name: str
    role: Role
    department: str | None
    csrf: str


def _sign(key: bytes, value: str) -> str:
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class Sessions:
    def __init__(self, redis: Redis, key: str, ttl_seconds: int) -> None:
        self.redis, self._key, self.ttl = redis, key.encode(), ttl_seconds

    def cookie_value(self, session: Session) -> str:
        return f"{session.session_id}.{_sign(self._key, session.session_id)}"

    def _session_id(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        session_id, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, _sign(self._key, session_id)):
            return None
        return session_id

    async def start(self, user: str, spec: User) -> Session:
        session = Session(
            session_id=secrets.token_urlsafe(24),
            user=user,
            name=spec.name or user,
            role=spec.role,
            department=spec.department,
            csrf=secrets.token_urlsafe(24),
        )
        fields: dict[
            str | bytes | bytearray | memoryview | int | float,
            str | bytes | bytearray | memoryview | int | float,
        ] = {
            "user": session.user,
            "name": session.name,
            "role": session.role,
            "department": session.department or "",
            "csrf": session.csrf,
            "started": str(int(time.time())),
        }
        key = keys.console_session(session.session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl)
            await pipe.execute()
        return session

    async def load(self, cookie: str | None) -> Session | None:
        session_id = self._session_id(cookie)
        if session_id is None:
            return None
        raw: dict[Any, Any] = await self.redis.hgetall(keys.console_session(session_id))
        if not raw:
            return None
        data = {as_str(k): as_str(v) for k, v in raw.items()}
        role = data["role"]
        if role not in ("operator", "department", "supervisor"):
            return None
        return Session(
            session_id=session_id,
            user=data["user"],
            name=data.get("name") or data["user"],
            role=role,  # type: ignore[arg-type]
            department=data.get("department") or None,
            csrf=data["csrf"],
        )

    async def end(self, session: Session) -> None:
        await self.redis.delete(keys.console_session(session.session_id))


class LoginThrottle:
    """Failed sign-ins counted per user name and per client address over a fixed window: past the limit,
    sign-in is refused (even with the right password) until the window ends."""

    def __init__(self, redis: Redis, attempts: int, window_seconds: int) -> None:
        self.redis, self.attempts, self.window = redis, attempts, window_seconds

    def limit(self, who: str) -> int:
        # Many staff may sign in from one address (a call centre's NAT, the ingress): it gets ten times
        # a user name's limit, enough to stop guessing across names without locking out the floor.
        return self.attempts * (10 if who.startswith("client:") else 1)

    async def wait_seconds(self, who: list[str]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for w in who:
                pipe.get(keys.console_login_failures(w))
                pipe.ttl(keys.console_login_failures(w))
            rows = await pipe.execute()
        waits = [
            max(int(ttl), 1)
            for w, count, ttl in zip(who, rows[::2], rows[1::2], strict=True)
            if count is not None and int(count) >= self.limit(w)
        ]
        return max(waits, default=0)

    async def failed(self, who: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for w in who:
                # The window starts at the first failure (SET NX: EXPIRE NX needs Redis 7).
                pipe.set(keys.console_login_failures(w), 0, ex=self.window, nx=True)
                pipe.incr(keys.console_login_failures(w))
            await pipe.execute()

    async def succeeded(self, user: str) -> None:
        await self.redis.delete(keys.console_login_failures(f"user:{user}"))
