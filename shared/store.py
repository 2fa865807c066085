"""The ticket store: a projection of each ticket's state and history in Redis.

A ticket is a hash (`hotline:ticket:{id}`) with a history list beside it. Every write goes through one
Lua script that first records `scope:event_id` in the ticket's applied set, so a redelivered event
changes nothing twice, and the hash, history and index updates land atomically.

The history is append-only, so an entry's position is a stable id. An entry that changes the ticket's
status carries that `status`, and the ticket's id goes into the set of the hour the entry happened in
(`hotline:updates:{epoch hour}`, expiring `UPDATES_RETENTION` after that hour): Open311 clients list
status updates by time window by reading only the hours the window covers.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared import contract
from shared.bus import RoundTrip, as_str
from shared.effects import HashSet, Increment, StoreWrite
from shared.status import Status

if TYPE_CHECKING:
    from shared.rehydration import RecordReader

PREFIX = "hotline"

UPDATES_RETENTION = timedelta(days=90)
_HOUR = 3600


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

    # The tickets changed since the recorder last wrote them to PostgreSQL, scored by when they first
    # changed (`MARK_CHANGED`): the recorder's to-do list, and what says a ticket is not yet recorded.
    unrecorded = f"{PREFIX}:recorder:unrecorded"

    # How many tickets the recorder's retention has removed from Redis, ever. While it is 0 (absent) a
    # ticket missing from Redis was never recorded-then-removed, so no store asks PostgreSQL for it.
    evicted = f"{PREFIX}:recorder:evicted"

    @staticmethod
    def updates(hour: int) -> str:
        """The ids of the tickets whose status changed in this hour (seconds since the epoch // 3600)."""
        return f"{PREFIX}:updates:{hour}"

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

    # Classifier: tickets below the review threshold, scored by when they were received; operators take
    # them off by confirming or correcting the category (the console's review queue).
    review = f"{PREFIX}:review"

    # Console: a signed-in session (a hash that expires; signing out deletes it) and failed sign-ins per
    # user name or client, counted over the throttle's window.
    @staticmethod
    def console_session(session_id: str) -> str:
        return f"{PREFIX}:console:session:{session_id}"

    @staticmethod
    def console_login_failures(who: str) -> str:
        return f"{PREFIX}:console:login-failures:{who}"


# Every script that changes a ticket's hash or history calls this after the change, in the same script:
# the ticket's revision (`REVISION_FIELD`) goes up, and the ticket joins the recorder's to-do list unless
# it is already on it (keeping the time it first changed). The recorder writes the ticket with its
# revision to PostgreSQL and takes it off the list only if the revision is still the one it wrote.
MARK_CHANGED = """
local function mark_changed(ticket_key, unrecorded_key, ticket_id)
  redis.call('HINCRBY', ticket_key, 'rev', 1)
  local now = redis.call('TIME')
  redis.call('ZADD', unrecorded_key, 'NX', tonumber(now[1]) + tonumber(now[2]) / 1000000, ticket_id)
end
"""
REVISION_FIELD = "rev"

_APPLY = (
    MARK_CHANGED
    + """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
local fields = cjson.decode(ARGV[2])
local set, gone = {}, {}
local changed = ARGV[3] ~= ''
for k, v in pairs(fields) do
  changed = true
  if v == cjson.null then gone[#gone + 1] = k else set[#set + 1] = k; set[#set + 1] = v end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[3]) end
if KEYS[4] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[5])
  redis.call('EXPIREAT', KEYS[4], ARGV[6])
end
for _, op in ipairs(cjson.decode(ARGV[4])) do redis.call(unpack(op)) end
if changed then mark_changed(KEYS[1], KEYS[5], ARGV[5]) end
return 1
"""
)


# Puts back a ticket read from the record, unless the ticket is in Redis again (then it is newer).
# KEYS: hash, history, by_created; ARGV: ticket id, received (unix seconds or ''), field count, the
# fields (name, value pairs), then the history entries in order.
_REHYDRATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[3])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + n)) end
if #ARGV >= 4 + n then
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 4 + n, #ARGV))
end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
return 1
"""


class Ticket(BaseModel):
    """A ticket as read back from the store. Services add fields; unknown ones are kept as strings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ticket_id: str
    status: Status = Status.RECEIVED
    channel: str | None = None
    text: str | None = None
    title: str | None = None
    language: str | None = None
    caller_masked: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    service_code: str | None = None
    media_url: str | None = None
    received_at: datetime | None = None
    category: str | None = None
    confidence: float | None = None
    urgency: str | None = None
    district: str | None = None
    street: str | None = None
    duplicate_of: str | None = None
    repeat_count: int = 0
    department: str | None = None
    dispatched_at: datetime | None = None
    dispatch_due_at: datetime | None = None
    feedback_due_at: datetime | None = None
    updated_at: datetime | None = None


class TicketNotFoundError(LookupError):
    pass


def names_a_ticket(ticket_id: str) -> bool:
    """False for an id with the key separator: `{id}:history` names a ticket's history list, which read
    as a ticket hash gets WRONGTYPE from Redis. Ids from requests are checked with this."""
    return ":" not in ticket_id


def check_write(write: StoreWrite, scope: str) -> None:
    """Refuse (UndeclaredWriteError) a write of a field or key the contract does not give `scope`."""
    contract.check_fields(scope, write.fields)
    for op in write.ops:
        declared = contract.check_key(scope, op.key)
        if declared is contract.TICKET and isinstance(op, Increment | HashSet):
            contract.check_fields(scope, [op.field])


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def updates_bucket(at: datetime) -> tuple[str, int]:
    """The hour set a status change at `at` goes into, and when that set expires (unix seconds)."""
    hour = int(at.timestamp()) // _HOUR
    return keys.updates(hour), (hour + 1) * _HOUR + int(UPDATES_RETENTION.total_seconds())


@dataclass(frozen=True)
class Update:
    """A history entry that changed a ticket's status; `index` is its stable position in the history."""

    ticket_id: str
    index: int
    at: datetime
    entry: dict[str, Any]


_FROM_SETTINGS: Any = object()


class TicketStore:
    def __init__(self, redis: Redis, record: RecordReader | None = _FROM_SETTINGS) -> None:
        """`record` reads back the tickets Redis no longer holds; by default the record at DATABASE_URL
        (none without one: then no ticket ever leaves Redis)."""
        self.redis = redis
        self._apply = redis.register_script(_APPLY)
        self._rehydrate = redis.register_script(_REHYDRATE)
        if record is _FROM_SETTINGS:
            from shared.rehydration import reader_for
            from shared.settings import CommonSettings

            record = reader_for(CommonSettings().database_url)
        self.record = record

    async def apply(
        self,
        write: StoreWrite,
        *,
        scope: str,
        pipe: Pipeline | RoundTrip | None = None,
        checked: bool = False,
    ) -> None:
        """Queue (with `pipe`) or run the idempotent write; `scope` names the writer (its consumer group),
        which must own every field and key the write touches (`check_write`; `checked`: done already)."""
        if not checked:
            check_write(write, scope)
        entry = write.history
        bucket, expires = "", 0
        status = write.fields.get("status")
        if entry and status and entry.get("at"):
            entry = {**entry, "status": status}
            bucket, expires = updates_bucket(datetime.fromisoformat(str(entry["at"])))
        history = json.dumps(entry, ensure_ascii=False, default=str) if entry else ""
        script_keys = [
            keys.ticket(write.ticket_id),
            keys.applied(write.ticket_id),
            keys.history(write.ticket_id),
            bucket,
            keys.unrecorded,
        ]
        args: list[str | bytes | int] = [
            f"{scope}:{write.event_id}",
            to_json(write.fields),  # strings and numbers only: what json.dumps gives, faster
            history,
            to_json(write.commands()),
            write.ticket_id,
            expires,
        ]
        if pipe is None:
            await self._apply(keys=script_keys, args=args)
        else:
            # EVAL rather than the registered script's EVALSHA: for a script in a pipeline redis-py first
            # sends SCRIPT EXISTS, one more round trip per batch. Redis caches the compiled script by its
            # hash either way.
            pipe.eval(_APPLY, len(script_keys), *script_keys, *args)

    async def get(self, ticket_id: str) -> Ticket | None:
        return (await self.get_many([ticket_id]))[0]

    async def get_or_raise(self, ticket_id: str) -> Ticket:
        ticket = await self.get(ticket_id)
        if ticket is None:
            raise TicketNotFoundError(ticket_id)
        return ticket

    async def get_many(
        self, ticket_ids: list[str], fields: Sequence[str] | None = None, *, rehydrate: bool = True
    ) -> list[Ticket | None]:
        """The tickets (None: no such ticket). With `fields`, only those are read and the others keep
        their defaults (None also when none of them is set): a worker that needs a few fields of each
        ticket of a batch skips reading and validating the rest. A ticket that left Redis is brought
        back from the record unless `rehydrate` is False (a search over the record needs only what
        Redis holds now)."""
        if not all(names_a_ticket(t) for t in ticket_ids):
            named = [t for t in ticket_ids if names_a_ticket(t)]
            found = dict(zip(named, await self.get_many(named, fields, rehydrate=rehydrate), strict=True))
            return [found.get(t) for t in ticket_ids]
        # The revision is on every hash: read with the fields, it tells a ticket that has none of them
        # from a ticket that is not in Redis, which alone may have to come back from the record.
        read = None if fields is None else [*fields, REVISION_FIELD]
        trip = RoundTrip(self.redis, transaction=False)
        for ticket_id in ticket_ids:
            if read is None:
                trip.command("HGETALL", keys.ticket(ticket_id))
            else:
                trip.command("HMGET", keys.ticket(ticket_id), *read)
        # Read after the hashes: a ticket removed before its hash was read has been counted here.
        trip.command("GET", keys.evicted)
        *rows, evicted = await trip.execute()
        if read is None:  # HGETALL's raw reply: a map (RESP3, redis-py's default), or a flat list (RESP2)
            rows = [
                row if isinstance(row, dict) else dict(zip(row[::2], row[1::2], strict=True)) for row in rows
            ]
        missing = [
            t
            for t, raw in zip(ticket_ids, rows, strict=True)
            if (not raw if read is None else all(v is None for v in raw))
        ]
        if fields is not None:
            rows = [{f: v for f, v in zip(fields, row[:-1], strict=True) if v is not None} for row in rows]
        if missing and int(evicted or 0) > 0 and rehydrate and self.record is not None:
            back = await self.rehydrate(missing)
            rows = [
                raw or {f: v for f, v in back.get(t, {}).items() if fields is None or f in fields}
                for t, raw in zip(ticket_ids, rows, strict=True)
            ]
        return [_ticket(ticket_id, raw) for ticket_id, raw in zip(ticket_ids, rows, strict=True)]

    async def rehydrate(self, ticket_ids: list[str]) -> dict[str, dict[str, str]]:
        """Bring the tickets Redis does not hold back from the record; returns the fields of those the
        record has (a ticket written to Redis meanwhile is left as it is there)."""
        assert self.record is not None
        recorded = await self.record.tickets(ticket_ids)
        if not recorded:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for t in recorded.values():
                received = t.fields.get("received_at")
                score = str(datetime.fromisoformat(received).timestamp()) if received else ""
                flat = [x for pair in t.fields.items() for x in pair]
                args: list[str | int] = [t.ticket_id, score, len(flat), *flat, *t.history]
                pipe.eval(
                    _REHYDRATE, 3, keys.ticket(t.ticket_id), keys.history(t.ticket_id), keys.by_created, *args
                )
            await pipe.execute()
        return {t.ticket_id: t.fields for t in recorded.values()}

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

    async def updates(
        self, since: datetime, until: datetime, limit: int, *, ticket_ids: list[str] | None = None
    ) -> list[Update]:
        """Status changes with `since <= at <= until`, oldest first, at most `limit`: the oldest ones when
        there are more. Reads hour by hour and stops once the hours read hold `limit` changes, so a wide
        window costs only what it returns; `ticket_ids` reads those tickets' histories instead."""
        if ticket_ids is not None:
            return sorted(await self._updates_of(ticket_ids, since, until), key=_in_order)[:limit]
        found: list[Update] = []
        seen: set[str] = set()
        # Times of the changes found but not yet known to be complete, so each is counted once.
        pending: list[datetime] = []
        complete_count = 0
        # Hours outside the retention hold nothing: a window reaching far back or ahead reads no more.
        now = int(datetime.now(UTC).timestamp()) // _HOUR
        first = max(
            int(since.timestamp()) // _HOUR, now - int(UPDATES_RETENTION.total_seconds()) // _HOUR - 1
        )
        last = min(int(until.timestamp()) // _HOUR, now + 1)
        for start in range(first, last + 1, 24):
            hours = range(start, min(start + 24, last + 1))
            async with self.redis.pipeline(transaction=False) as pipe:
                for hour in hours:
                    pipe.smembers(keys.updates(hour))
                members: list[set[Any]] = await pipe.execute()
            for hour, ids in zip(hours, members, strict=True):
                if new := sorted({as_str(i) for i in ids} - seen):
                    seen.update(new)
                    more = await self._updates_of(new, since, until)
                    found += more
                    for u in more:
                        heapq.heappush(pending, u.at)
                complete = datetime.fromtimestamp((hour + 1) * _HOUR, UTC)
                while pending and pending[0] < complete:
                    heapq.heappop(pending)
                    complete_count += 1
                if complete_count >= limit:
                    return sorted(found, key=_in_order)[:limit]
        return sorted(found, key=_in_order)[:limit]

    async def _updates_of(self, ticket_ids: list[str], since: datetime, until: datetime) -> list[Update]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.lrange(keys.history(ticket_id), 0, -1)
            histories: list[list[Any]] = await pipe.execute()
        out = []
        for ticket_id, rows in zip(ticket_ids, histories, strict=True):
            for index, row in enumerate(rows):
                entry = json.loads(row)
                if "status" not in entry:
                    continue
                at = datetime.fromisoformat(entry["at"])
                if since <= at <= until:
                    out.append(Update(ticket_id, index, at, entry))
        return out


def _in_order(update: Update) -> tuple[datetime, str, int]:
    return update.at, update.ticket_id, update.index


def _ticket(ticket_id: str, raw: dict[Any, Any]) -> Ticket | None:
    """A ticket from its hash as HGETALL returns it (empty: no such ticket)."""
    if not raw:
        return None
    data = {as_str(k): as_str(v) for k, v in raw.items()}
    data["ticket_id"] = ticket_id
    return Ticket.model_validate(data)
