"""The ticket store: a projection of each ticket's state and history in Redis.

A ticket is a hash (`hotline:ticket:{id}`) with a history list beside it. Every write goes through one
Lua script that first records `scope:event_id` in the ticket's applied set, so a redelivered event
changes nothing twice, and the hash, history and index updates land atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.bus import as_str
from shared.effects import StoreWrite

PREFIX = "hotline"

# A ticket in one of these is done (Open311 "closed"): departments can no longer accept or resolve it, and
# a new complaint cannot be its duplicate.
CLOSED_STATUSES = ("resolved", "closed", "duplicate")


class keys:
    """Redis key names; every service spells keys through here."""

    @staticmethod
    def ticket(ticket_id: str) -> str:
        return f"{PREFIX}:ticket:{ticket_id}"

    @staticmethod
    def applied(ticket_id: str) -> str:
        return f"{PREFIX}:ticket:{ticket_id}:applied"

    @staticmethod
    def history(ticket_id: str) -> str:
        return f"{PREFIX}:ticket:{ticket_id}:history"

    by_created = f"{PREFIX}:tickets:by_created"
    # Operators' category corrections, a stream of flat fields {ticket_id, text, category, previous,
    # operator, at}: the classifier's training labels (written by intake).
    labels = f"{PREFIX}:labels"

    @staticmethod
    def department_open(department: str) -> str:
        return f"{PREFIX}:dept:{department}:open"

    @staticmethod
    def counters(name: str) -> str:
        return f"{PREFIX}:counters:{name}"

    @staticmethod
    def chronic(month: str) -> str:
        """Insight's 每月一题 candidates of a month (YYYY-MM), which the monthly report exports."""
        return f"{PREFIX}:insight:chronic:{month}"

    @staticmethod
    def dedupe(scope: str, key: str) -> str:
        return f"{PREFIX}:dedupe:{scope}:{key}"

    # Evaluation: surveys waiting to be sent, surveys waiting for an answer, each survey's outcome
    # (answered or expired, whichever comes first), the 三率 counters and tickets under supervision.
    surveys_due = f"{PREFIX}:surveys:due"
    surveys_open = f"{PREFIX}:surveys:open"
    supervision = f"{PREFIX}:supervision"

    @staticmethod
    def survey_outcome(ticket_id: str, survey_round: int) -> str:
        return f"{PREFIX}:survey:{ticket_id}:{survey_round}:outcome"

    @staticmethod
    def rates(window: str, bucket: str) -> str:
        return f"{PREFIX}:rates:{window}:{bucket}"


_APPLY = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
local fields = cjson.decode(ARGV[2])
local set = {}
for k, v in pairs(fields) do
  if v == cjson.null then redis.call('HDEL', KEYS[1], k) else set[#set + 1] = k; set[#set + 1] = v end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[3]) end
for _, op in ipairs(cjson.decode(ARGV[4])) do redis.call(unpack(op)) end
return 1
"""


class Ticket(BaseModel):
    """A ticket as read back from the store. Services add fields; unknown ones are kept as strings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ticket_id: str
    status: str = "received"
    channel: str | None = None
    text: str | None = None
    title: str | None = None
    language: str | None = None
    caller_masked: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    service_code: str | None = None
    received_at: datetime | None = None
    category: str | None = None
    confidence: float | None = None
    urgency: str | None = None
    district: str | None = None
    street: str | None = None
    duplicate_of: str | None = None
    department: str | None = None
    dispatched_at: datetime | None = None
    dispatch_due_at: datetime | None = None
    feedback_due_at: datetime | None = None
    updated_at: datetime | None = None


class TicketNotFoundError(LookupError):
    pass


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class TicketStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._apply = redis.register_script(_APPLY)

    async def apply(self, write: StoreWrite, *, scope: str, pipe: Pipeline | None = None) -> None:
        """Queue (with `pipe`) or run the idempotent write; `scope` names the writer (its consumer group)."""
        history = json.dumps(write.history, ensure_ascii=False, default=str) if write.history else ""
        script_keys = [
            keys.ticket(write.ticket_id),
            keys.applied(write.ticket_id),
            keys.history(write.ticket_id),
        ]
        args: list[str | bytes] = [
            f"{scope}:{write.event_id}",
            to_json(write.fields),  # strings and numbers only: what json.dumps gives, faster
            history,
            to_json(write.ops),
        ]
        if pipe is None:
            await self._apply(keys=script_keys, args=args)
        else:
            # EVAL rather than the registered script's EVALSHA: for a script in a pipeline redis-py first
            # sends SCRIPT EXISTS, one more round trip per batch. Redis caches the compiled script by its
            # hash either way.
            pipe.eval(_APPLY, len(script_keys), *script_keys, *args)

    async def get(self, ticket_id: str) -> Ticket | None:
        return _ticket(ticket_id, await self.redis.hgetall(keys.ticket(ticket_id)))

    async def get_or_raise(self, ticket_id: str) -> Ticket:
        ticket = await self.get(ticket_id)
        if ticket is None:
            raise TicketNotFoundError(ticket_id)
        return ticket

    async def get_many(
        self, ticket_ids: list[str], fields: Sequence[str] | None = None
    ) -> list[Ticket | None]:
        """The tickets (None: no such ticket). With `fields`, only those are read and the others keep
        their defaults (None also when none of them is set): a worker that needs a few fields of each
        ticket of a batch skips reading and validating the rest."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                if fields is None:
                    pipe.hgetall(keys.ticket(ticket_id))
                else:
                    pipe.hmget(keys.ticket(ticket_id), fields)
            rows: list[Any] = await pipe.execute()
        if fields is not None:
            rows = [{f: v for f, v in zip(fields, row, strict=True) if v is not None} for row in rows]
        return [_ticket(ticket_id, raw) for ticket_id, raw in zip(ticket_ids, rows, strict=True)]

    async def history(self, ticket_id: str) -> list[dict[str, Any]]:
        rows = await self.redis.lrange(keys.history(ticket_id), 0, -1)
        return [json.loads(row) for row in rows]

    async def recent_ids(
        self, since: datetime, until: datetime, limit: int, *, offset: int = 0, newest_first: bool = False
    ) -> list[str]:
        if newest_first:
            ids = await self.redis.zrevrangebyscore(
                keys.by_created, until.timestamp(), since.timestamp(), start=offset, num=limit
            )
        else:
            ids = await self.redis.zrangebyscore(
                keys.by_created, since.timestamp(), until.timestamp(), start=offset, num=limit
            )
        return [as_str(i) for i in ids if isinstance(i, bytes | str)]


def _ticket(ticket_id: str, raw: dict[Any, Any]) -> Ticket | None:
    """A ticket from its hash as HGETALL returns it (empty: no such ticket)."""
    if not raw:
        return None
    data = {as_str(k): as_str(v) for k, v in raw.items()}
    data["ticket_id"] = ticket_id
    return Ticket.model_validate(data)
