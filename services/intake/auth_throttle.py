"""Failed authentication, throttled per client: past `auth_failure_limit` failures (401, or a wrong Open311
api_key) in `auth_failure_window_seconds`, the client gets 429 with Retry-After until the window ends,
before its credentials are even checked, so guessing tokens and flooding the logs both stop.

Failures are counted in Redis (one INCR per failure, shared by every replica); a replica that sees a client
over the limit remembers it in memory until the window ends, so a blocked client costs no Redis call and a
well-behaved one costs nothing at all. Another replica learns of it on its own next failure from that
client. Each failure is counted in `hotline_intake_signature_failures{route}`; the WARNING line is written
at most once per client per `LOG_EVERY` seconds, saying how many it stands for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake import open311
from services.intake.http import AUTH_FAILED, HttpError, client_ip, problem
from shared.store import PREFIX

log = logging.getLogger("hotline.intake")
LOG_EVERY = 60.0
# A bound on the memory a flood of distinct addresses can take; past it the oldest entries go.
MAX_CLIENTS = 10_000

_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


def failure_key(client: str) -> str:
    return f"{PREFIX}:authfail:{client}"


@dataclass
class _Noted:
    at: float
    suppressed: int = 0


@dataclass
class AuthThrottle:
    redis: Redis
    limit: int
    window: int
    registry: CollectorRegistry
    _blocked: dict[str, float] = field(default_factory=dict)
    _logged: dict[str, _Noted] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._count = self.redis.register_script(_COUNT)
        self.throttled = Counter(
            "hotline_intake_auth_throttled",
            "Requests refused with 429 because their client failed authentication too often",
            registry=self.registry,
        )

    def retry_after(self, client: str, now: float) -> int:
        until = self._blocked.get(client)
        if until is None:
            return 0
        if until <= now:
            del self._blocked[client]
            return 0
        return max(1, int(until - now + 0.999))

    async def failed(self, client: str, route: str, problem: str, now: float) -> None:
        self._note(client, route, problem, now)
        try:
            count, ttl = await self._count(keys=[failure_key(client)], args=[self.window])
        except (RedisError, OSError):
            return  # the request was refused anyway; without Redis there is nothing to share
        if int(count) >= self.limit:
            if len(self._blocked) >= MAX_CLIENTS:
                self._blocked.pop(next(iter(self._blocked)))
            self._blocked[client] = now + int(ttl)

    def _note(self, client: str, route: str, problem: str, now: float) -> None:
        noted = self._logged.get(client)
        if noted is not None and now - noted.at < LOG_EVERY:
            noted.suppressed += 1
            return
        more = (
            f" (and {noted.suppressed} more refusals since the last line)"
            if noted and noted.suppressed
            else ""
        )
        log.warning("%s: refused credentials from %s: %s%s", route, client, problem, more)
        if noted is None and len(self._logged) >= MAX_CLIENTS:
            self._logged.pop(next(iter(self._logged)))
        self._logged[client] = _Noted(now)


class AuthThrottleMiddleware:
    """Refuses a throttled client at once; after each request, counts it if its authentication failed."""

    def __init__(self, app: ASGIApp, throttle: AuthThrottle) -> None:
        self.app, self.throttle = app, throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        client = client_ip(request)
        wait = self.throttle.retry_after(client, time.monotonic())
        if wait:
            self.throttle.throttled.inc()
            refusal = HttpError(
                429,
                "too_many_failures",
                f"too many failed authentications from this client, retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
            render = open311.render_error if request.url.path.startswith(open311.BASE) else problem
            await render(request, refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)
        failed = getattr(request.state, AUTH_FAILED, None)
        if failed is not None:
            route, why = failed
            await self.throttle.failed(client, route, why, time.monotonic())
