"""Outbound webhooks: a signed JSON POST with timeouts and retries (exponential backoff with jitter).

Used for calls out of the system (the survey SMS/IVR gateway, departments' own systems). Every try of one
delivery carries the same `webhook-id`, so the receiver can de-duplicate; each try is signed afresh
(Standard Webhooks: the timestamp is part of the signature). A delivery is retried on connection errors,
timeouts, 408, 409, 425, 429 and 5xx; any other status is final. Dispatch keeps its own durable retry
queue (a department may be down for hours) but shares `backoff` and `retryable` from here. After the
last try the caller gets the outcome and decides what to record: nothing here blocks forever or raises.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field

from shared.standard_webhooks import signed_headers

RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def retryable(status: int) -> bool:
    """Whether a receiver's answer is worth another try (timeouts, conflicts, throttling, its own faults)."""
    return status >= 500 or status in RETRYABLE_4XX


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after try `attempt`: exponential up to `cap`, half of it fixed and half jittered,
    so replicas retrying together spread out yet no retry comes right on the heels of a failure."""
    ceiling = min(cap, base * float(2 ** max(0, attempt - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class RetryPolicy(BaseModel):
    attempts: int = Field(default=5, ge=1, le=20)
    base_delay: float = Field(default=0.5, ge=0, description="seconds before the second try")
    max_delay: float = Field(default=30.0, ge=0, description="cap of one backoff wait")
    timeout: float = Field(default=10.0, gt=0, description="seconds for one try, connect to last byte")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return backoff(attempt, self.base_delay, self.max_delay, rng)


@dataclass(frozen=True)
class Delivery:
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    seconds: float


Sleep = Callable[[float], Awaitable[None]]


class OutboundSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        secret: str,
        policy: RetryPolicy | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.secret = secret
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def send(self, url: str, webhook_id: str, body: bytes) -> Delivery:
        """POST `body` (JSON) to `url` until it is accepted (2xx), refused for good, or tries run out."""
        started = time.monotonic()
        policy = self.policy
        status: int | None = None
        error: str | None = None
        for attempt in range(1, policy.attempts + 1):
            headers = {
                **signed_headers(self.secret, webhook_id, body),
                "content-type": "application/json",
                "user-agent": "hotline-outbound/1",
            }
            wait = policy.backoff(attempt, self._rng)
            try:
                response = await self.client.post(url, content=body, headers=headers, timeout=policy.timeout)
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:300]
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return Delivery(True, attempt, status, None, time.monotonic() - started)
                error = f"HTTP {status}"
                if not retryable(status):
                    break
                wait = max(wait, _retry_after(response, policy.max_delay))
            if attempt < policy.attempts:
                await self._sleep(wait)
        return Delivery(False, attempt, status, error, time.monotonic() - started)


def _retry_after(response: httpx.Response, cap: float) -> float:
    """The receiver's Retry-After in seconds (capped), or 0; HTTP-date forms are ignored."""
    value = response.headers.get("retry-after", "")
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        return 0.0
