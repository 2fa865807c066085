"""Webhooks to departments' own systems: signed, retried with backoff, dead-lettered, never blocking.

The dispatch handlers only enqueue a delivery (in the same transaction as the ticket's dispatch): a job in
`state.OUTBOUND_JOBS` and its due time in `state.OUTBOUND_DUE`. This background loop claims due jobs
(moving their due time forward by a lease, so other replicas skip them while they are in flight), POSTs
each one with httpx, signed per Standard Webhooks with the department's secret and `webhook-id` = the
event id (so a receiver can recognise a redelivery), and then either marks the event sent, schedules the
next try (exponential backoff with jitter), or after the last try writes a dead-letter entry to
`streams.OUTBOUND_DLQ`. A slow or dead department holds only its own in-flight slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel
from redis.asyncio import Redis

from services.dispatch import state
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.routing import RoutingSource
from services.dispatch.state import OutboundJob as Job
from shared import streams
from shared.bus import as_str, read_range
from shared.dlq import dead_at, field_text
from shared.outbound import backoff, retryable
from shared.standard_webhooks import signed_headers

log = logging.getLogger("hotline.dispatch.outbound")

SENT_TTL_SECONDS = 7 * 24 * 3600

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class OutboundSettings(BaseModel):
    timeout: float = 5.0
    max_attempts: int = 6
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    concurrency: int = 32
    poll_interval: float = 0.5


class Outbound:
    def __init__(
        self,
        redis: Redis,
        routing: RoutingSource,
        metrics: DispatchMetrics,
        settings: OutboundSettings,
        *,
        maxlen: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.redis = redis
        self.routing = routing
        self.metrics = metrics
        self.settings = settings
        self.maxlen = maxlen
        self.env = env if env is not None else os.environ
        self._claim = redis.register_script(_CLAIM)
        self._inflight: set[asyncio.Task[None]] = set()

    async def claim(self, limit: int) -> list[str]:
        now = time.time()
        lease = now + self.settings.timeout * 2 + 30
        ids = await self._claim(keys=[state.OUTBOUND_DUE], args=[now, lease, limit])
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def deliver(self, client: httpx.AsyncClient, event_id: str) -> str:
        """One try of one delivery; returns the outcome (delivered, retry, dead_letter, gone)."""
        raw = await self.redis.hget(state.OUTBOUND_JOBS, event_id)
        if raw is None or await self.redis.exists(state.outbound_sent(event_id)):
            await self._finish(event_id)
            return "gone"
        job = Job.model_validate_json(raw)
        dept = self.routing.refresh().department(job.department)
        if dept is None or not dept.webhook_url or not dept.token_env:
            return await self._dead(event_id, job, "no_webhook", "the department has no webhook any more")
        secret = self.env.get(dept.token_env)
        if not secret:
            return await self._dead(event_id, job, "no_secret", f"{dept.token_env} is not set")
        body = job.body.encode()
        headers = {
            **signed_headers(secret, event_id, body),
            "content-type": "application/json",
            "user-agent": "hotline-dispatch",
        }
        try:
            response = await client.post(
                dept.webhook_url, content=body, headers=headers, timeout=self.settings.timeout
            )
        except httpx.HTTPError as exc:
            return await self._failed(event_id, job, "unreachable", f"{type(exc).__name__}: {exc}"[:300])
        if response.is_success:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(state.outbound_sent(event_id), job.department, ex=SENT_TTL_SECONDS)
                pipe.zrem(state.OUTBOUND_DUE, event_id)
                pipe.hdel(state.OUTBOUND_JOBS, event_id)
                await pipe.execute()
            self.metrics.deliveries.labels(job.department, "delivered").inc()
            return "delivered"
        error = f"HTTP {response.status_code}: {response.text[:200]}"
        if not retryable(response.status_code):
            return await self._dead(event_id, job, "refused", error)
        return await self._failed(event_id, job, "http_error", error)

    async def _failed(self, event_id: str, job: Job, reason: str, error: str) -> str:
        attempts = job.attempts + 1
        if attempts >= self.settings.max_attempts:
            return await self._dead(event_id, job.model_copy(update={"attempts": attempts}), reason, error)
        delay = backoff(attempts, self.settings.backoff_base, self.settings.backoff_cap)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                state.OUTBOUND_JOBS, event_id, job.model_copy(update={"attempts": attempts}).model_dump_json()
            )
            pipe.zadd(state.OUTBOUND_DUE, {event_id: time.time() + delay})
            await pipe.execute()
        log.warning(
            "webhook to %s failed (try %d, next in %.1fs): %s", job.department, attempts, delay, error
        )
        self.metrics.deliveries.labels(job.department, "retry").inc()
        return "retry"

    async def _dead(self, event_id: str, job: Job, reason: str, error: str) -> str:
        fields: dict[Any, Any] = {
            "event_id": event_id,
            "department": job.department,
            "reason": reason,
            "error": error,
            "attempts": str(job.attempts),
            "body": job.body,
            "dead_at": str(time.time()),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(streams.OUTBOUND_DLQ, fields, maxlen=self.maxlen, approximate=True)
            pipe.zrem(state.OUTBOUND_DUE, event_id)
            pipe.hdel(state.OUTBOUND_JOBS, event_id)
            await pipe.execute()
        log.error(
            "webhook to %s dead-lettered after %d tries (%s): %s", job.department, job.attempts, reason, error
        )
        self.metrics.deliveries.labels(job.department, "dead_letter").inc()
        return "dead_letter"

    async def _finish(self, event_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(state.OUTBOUND_DUE, event_id)
            pipe.hdel(state.OUTBOUND_JOBS, event_id)
            await pipe.execute()

    async def _one(self, client: httpx.AsyncClient, event_id: str) -> None:
        try:
            await self.deliver(client, event_id)
        except Exception:  # Redis trouble: the lease expires and the job is tried again
            log.exception("webhook delivery %s failed unexpectedly", event_id)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while not stop.is_set():
                free = self.settings.concurrency - len(self._inflight)
                try:
                    ids = await self.claim(free) if free > 0 else []
                except Exception:
                    log.exception("claiming webhook deliveries failed")
                    ids = []
                for event_id in ids:
                    task = asyncio.create_task(self._one(client, event_id))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                if len(ids) < max(free, 1):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_interval)
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)


class DeadDelivery(BaseModel):
    """A webhook that was never delivered, as `Outbound._dead` wrote it to `streams.OUTBOUND_DLQ`."""

    dlq_id: str
    event_id: str
    ticket_id: str | None
    department: str
    reason: str
    error: str
    attempts: int
    dead_at: datetime | None


def _dead_delivery(dlq_id: bytes, fields: dict[bytes, bytes]) -> DeadDelivery:
    try:
        ticket_id = json.loads(field_text(fields, b"body")).get("ticket_id")
    except (ValueError, AttributeError):
        ticket_id = None
    return DeadDelivery(
        dlq_id=as_str(dlq_id),
        event_id=field_text(fields, b"event_id"),
        ticket_id=ticket_id,
        department=field_text(fields, b"department"),
        reason=field_text(fields, b"reason"),
        error=field_text(fields, b"error"),
        attempts=int(field_text(fields, b"attempts") or 0),
        dead_at=dead_at(fields),
    )


async def dead_deliveries(redis: Redis, limit: int = 100) -> list[DeadDelivery]:
    return [_dead_delivery(i, f) for i, f in await read_range(redis, streams.OUTBOUND_DLQ, count=limit)]


async def redeliver(redis: Redis, ids: list[str] | None = None) -> int:
    """Queue dead deliveries (all, or those dead-letter `ids`) again with a fresh count of tries, once the
    department's system is back; each moves out of the dead letters in the same transaction."""
    wanted = set(ids) if ids else None
    count = 0
    for dlq_id, fields in await read_range(redis, streams.OUTBOUND_DLQ):
        if wanted is not None and as_str(dlq_id) not in wanted:
            continue
        dead = _dead_delivery(dlq_id, fields)
        job = Job(department=dead.department, body=field_text(fields, b"body"))
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(state.OUTBOUND_JOBS, dead.event_id, job.model_dump_json())
            pipe.zadd(state.OUTBOUND_DUE, {dead.event_id: time.time()})
            pipe.xdel(streams.OUTBOUND_DLQ, dlq_id)
            await pipe.execute()
        count += 1
    return count
