"""Redis stays flat: a closed ticket leaves Redis once the record has its final state and it has been
closed for the hot retention (HOTLINE_HOT_RETENTION_DAYS).

The sweep walks the tickets created before the retention began (`keys.by_created`, oldest first: a
ticket closed a retention ago was created before that), keeps the closed ones whose last change is older
than the retention, and asks PostgreSQL which revision of each it holds. Only a ticket whose revision in
the record is the one in Redis, and that is not on the recorder's to-do list, is removed, by one script
that checks both again (a change between the check and the removal keeps the ticket). It takes the hash,
the history, the applied set and the index entries (the creation index, the department's open set, the
review queue, the hours of its status changes). What asks for the ticket later gets it back from the record
(shared/rehydration.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis

from services.recorder.database import Database
from shared.bus import as_str
from shared.status import CLOSED
from shared.store import REVISION_FIELD, keys, updates_bucket
from shared.worker import every

# KEYS: hash, history, applied set, the recorder's to-do list, by_created, the department's open set
# (or the hash again when none), the review queue, the eviction count (readers skip PostgreSQL while it
# is 0), then the hour sets of the ticket's status changes.
# ARGV: ticket id, the revision the record holds, then the closed statuses.
_EVICT = """
local id = ARGV[1]
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[2] then return 0 end
if redis.call('ZSCORE', KEYS[4], id) then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
local closed = false
for i = 3, #ARGV do if ARGV[i] == status then closed = true end end
if not closed then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[5], id)
if KEYS[6] ~= KEYS[1] then redis.call('ZREM', KEYS[6], id) end
redis.call('ZREM', KEYS[7], id)
redis.call('INCR', KEYS[8])
for i = 9, #KEYS do redis.call('SREM', KEYS[i], id) end
return 1
"""

log = logging.getLogger("hotline.recorder.retention")

READ = ("status", "updated_at", "received_at", REVISION_FIELD, "department")

Revisions = Callable[[list[str]], Awaitable[dict[str, int]]]


@dataclass
class Sweep:
    scanned: int = 0  # tickets created before the retention began
    closed: int = 0  # ... closed for longer than the retention
    unrecorded: int = 0  # ... whose final state the record does not have yet: kept
    evicted: int = 0


def _closed_at(fields: dict[str, str]) -> datetime | None:
    at = fields.get("updated_at") or fields.get("received_at")
    return datetime.fromisoformat(at) if at else None


async def sweep(
    redis: Redis, revisions: Revisions, retention: timedelta, now: datetime, page: int = 500
) -> Sweep:
    """One pass over the tickets old enough to go; `revisions` reads the record's revision of tickets."""
    cutoff = now - retention
    result = Sweep()
    start = 0
    while True:
        members = await redis.zrangebyscore(
            keys.by_created, "-inf", cutoff.timestamp(), start=start, num=page
        )
        ids = [as_str(m) for m in members if isinstance(m, bytes | str)]
        if not ids:
            return result
        result.scanned += len(ids)
        async with redis.pipeline(transaction=False) as pipe:
            for ticket_id in ids:
                pipe.hmget(keys.ticket(ticket_id), READ)
            rows = await pipe.execute()
        states = {
            t: {k: as_str(v) for k, v in zip(READ, row, strict=True) if v is not None}
            for t, row in zip(ids, rows, strict=True)
        }
        closed = [
            t
            for t, f in states.items()
            if f.get("status") in CLOSED and (at := _closed_at(f)) is not None and at <= cutoff
        ]
        result.closed += len(closed)
        recorded = await revisions(closed)
        ready = [t for t in closed if str(recorded.get(t)) == states[t].get(REVISION_FIELD)]
        result.unrecorded += len(closed) - len(ready)
        evicted = await _evict(redis, ready, states)
        result.evicted += evicted
        if len(ids) < page:
            return result
        start += len(ids) - evicted  # the evicted ones left the index


async def _evict(redis: Redis, ticket_ids: list[str], states: dict[str, dict[str, str]]) -> int:
    if not ticket_ids:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for ticket_id in ticket_ids:
            pipe.lrange(keys.history(ticket_id), 0, -1)
        histories = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for ticket_id, history in zip(ticket_ids, histories, strict=True):
            state = states[ticket_id]
            hours = sorted({updates_bucket(at)[0] for at in _status_changes(history)})
            department = state.get("department")
            script_keys = [
                keys.ticket(ticket_id),
                keys.history(ticket_id),
                keys.applied(ticket_id),
                keys.unrecorded,
                keys.by_created,
                keys.department_open(department) if department else keys.ticket(ticket_id),
                # A ticket queued before closing pruned the queue would otherwise stay there for ever.
                keys.review,
                keys.evicted,
                *hours,
            ]
            pipe.eval(
                _EVICT, len(script_keys), *script_keys, ticket_id, state[REVISION_FIELD], *sorted(CLOSED)
            )
        done = await pipe.execute()
    return sum(int(d) for d in done)


def _status_changes(history: list[bytes | str]) -> list[datetime]:
    out = []
    for raw in history:
        entry = json.loads(raw)
        if "status" in entry and entry.get("at"):
            out.append(datetime.fromisoformat(str(entry["at"])))
    return out


# The newest recorded tickets checked against Redis while nothing was evicted (`guard_skipped_reads`).
GUARD_SAMPLE = 100


async def guard_skipped_reads(redis: Redis, newest_recorded: Callable[[int], Awaitable[list[str]]]) -> bool:
    """While `keys.evicted` is absent, stores take a ticket Redis lacks for one the record lacks too and
    never ask PostgreSQL. A record holding tickets Redis lacks without an eviction (Redis lost and started
    empty, or restored from an older backup) breaks that: if any of the newest recorded tickets is not in
    Redis, set the count so stores ask the record again. True when it did."""
    if await redis.exists(keys.evicted):
        return False
    ids = await newest_recorded(GUARD_SAMPLE)
    if not ids:
        return False
    async with redis.pipeline(transaction=False) as pipe:
        for ticket_id in ids:
            pipe.exists(keys.ticket(ticket_id))
        held = await pipe.execute()
    if all(held):
        return False
    await redis.set(keys.evicted, 1, nx=True)
    log.warning("retention: the record holds tickets Redis lacks; reads of a missing ticket ask the record")
    return True


class Retention:
    """The recorder's sweep, every `interval`, with its metrics. Each pass first asks the database for
    `SELECT 1` (through `Database.until_done`, which keeps the recorder's database-up gauge), so the
    gauge says whether PostgreSQL answers even when no ticket changes."""

    def __init__(
        self,
        redis: Redis,
        database: Database,
        retention: timedelta,
        interval: float,
        registry: CollectorRegistry,
    ) -> None:
        self.redis, self.database, self.retention, self.interval = redis, database, retention, interval
        self.evicted = Counter(
            "hotline_recorder_evicted_tickets",
            "Closed tickets removed from Redis once recorded and past the hot retention",
            registry=registry,
        )
        self.hot = Gauge(
            "hotline_hot_tickets",
            "Tickets held in Redis (open, or closed within the retention)",
            registry=registry,
        )
        self.waiting = Gauge(
            "hotline_recorder_eviction_waiting_tickets",
            "Tickets past the hot retention kept in Redis because the record lacks their final state",
            registry=registry,
        )

    async def _probe(self) -> None:
        await (await self.database.pool()).fetchval("SELECT 1")

    async def revisions(self, ticket_ids: list[str]) -> dict[str, int]:
        if not ticket_ids:
            return {}
        rows = await (await self.database.pool()).fetch(
            "SELECT ticket_id, rev FROM tickets WHERE ticket_id = ANY($1::text[])", ticket_ids
        )
        return {r["ticket_id"]: int(r["rev"]) for r in rows}

    async def newest_recorded(self, count: int) -> list[str]:
        rows = await (await self.database.pool()).fetch(
            "SELECT ticket_id FROM tickets ORDER BY received_at DESC LIMIT $1", count
        )
        return [r["ticket_id"] for r in rows]

    async def once(self, stop: asyncio.Event) -> Sweep:
        await self.database.until_done(self._probe, stop)
        await guard_skipped_reads(self.redis, self.newest_recorded)
        result = await sweep(self.redis, self.revisions, self.retention, datetime.now(UTC))
        self.evicted.inc(result.evicted)
        self.waiting.set(result.unrecorded)
        self.hot.set(await self.redis.zcard(keys.by_created))
        if result.evicted:
            log.info("retention: %d closed tickets left Redis (recorded)", result.evicted)
        return result

    async def loop(self, stop: asyncio.Event) -> None:
        # The database or Redis away: nothing is removed, the next pass tries again.
        await every(stop, self.interval, lambda: self.once(stop), log, "retention: a sweep")
