"""What intake writes to Redis, each in one atomic script: tickets, events about tickets, rate counters.

Atomic on purpose: a de-duplication marker written without its XADD (Redis fails between the two)
would make the provider's retry look like a duplicate and lose the ticket or the action.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic_core import to_json
from redis.asyncio import Redis

from shared import contract, streams
from shared.bus import ScriptBatcher, as_str
from shared.codec import pack
from shared.events import Event, TicketReceived
from shared.status import Status
from shared.store import MARK_CHANGED, PREFIX, iso, keys, updates_bucket

DEDUPE_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Rate:
    """A fixed-window counter: at most `limit` hits per `window` seconds for one source."""

    key: str
    limit: int
    window: int


NO_RATE = Rate("", 0, 1)


def rate_key(kind: str, source: str) -> str:
    return f"{PREFIX}:rate:{kind}:{source}"


# Shared by every script: returns the seconds until the window ends when the source is over its limit.
_RATE = """
local function limited(key, limit, window)
  if key == '' then return nil end
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, window) end
  if n > tonumber(limit) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then redis.call('EXPIRE', key, window); ttl = tonumber(window) end
    return math.max(1, ttl)
  end
  return nil
end
"""

_ACCEPT = (
    _RATE
    + MARK_CHANGED
    + """
local wait = limited(KEYS[7], ARGV[7], ARGV[8])
if wait then return {-1, tostring(wait)} end
for i = 1, 2 do
  if KEYS[i] ~= '' and not redis.call('SET', KEYS[i], ARGV[1], 'NX', 'EX', ARGV[2]) then
    -- seen before: undo the call id's marker set just above, so a retry finds the same answer
    if i == 2 and KEYS[1] ~= '' then redis.call('DEL', KEYS[1]) end
    return {0, redis.call('GET', KEYS[i])}
  end
end
-- the ticket id follows from the source id: past the markers' TTL a retry finds the ticket itself
if redis.call('EXISTS', KEYS[4]) == 1 then return {0, ARGV[1]} end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', '__data__', ARGV[3])
redis.call('HSET', KEYS[4], unpack(ARGV, 10))
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
redis.call('RPUSH', KEYS[6], ARGV[6])
redis.call('SADD', KEYS[8], ARGV[1])
redis.call('EXPIREAT', KEYS[8], ARGV[9])
mark_changed(KEYS[4], KEYS[9], ARGV[1])
return {1, ARGV[1]}
"""
)

# Events about an existing ticket (department actions, survey answers). The ticket's existence and
# its current department are checked inside the script, so a re-dispatch racing the request cannot
# let a department act on a ticket that has just left it.
_PUBLISH = (
    _RATE
    + MARK_CHANGED
    + """
local wait = limited(KEYS[1], ARGV[1], ARGV[2])
if wait then return {'rate', tostring(wait)} end
for i = 2, 3 do
  if KEYS[i] ~= '' then
    local seen = redis.call('GET', KEYS[i])
    if seen then return {'duplicate', seen} end
  end
end
if redis.call('EXISTS', KEYS[4]) == 0 then return {'missing', ''} end
if ARGV[8] ~= '' then
  local dept = redis.call('HGET', KEYS[4], 'department') or ''
  if dept ~= ARGV[8] then return {'forbidden', dept} end
end
if ARGV[9] ~= '' then
  local status = redis.call('HGET', KEYS[4], 'status') or ''
  for _, refused in ipairs(cjson.decode(ARGV[9])) do
    if status == refused then return {'conflict', status} end
  end
end
for i = 2, 3 do
  if KEYS[i] ~= '' then redis.call('SET', KEYS[i], ARGV[3], 'EX', ARGV[4]) end
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', '__data__', ARGV[5])
redis.call('RPUSH', KEYS[6], ARGV[7])
mark_changed(KEYS[4], KEYS[7], ARGV[10])
return {'ok', ARGV[3]}
"""
)

_HIT = (
    _RATE
    + """
local wait = limited(KEYS[1], ARGV[1], ARGV[2])
if wait then return wait end
return 0
"""
)


@dataclass(frozen=True)
class Accepted:
    ticket_id: str
    duplicate: bool


@dataclass(frozen=True)
class RateLimited:
    retry_after: int


Outcome = Literal["ok", "duplicate", "missing", "forbidden", "conflict"]


@dataclass(frozen=True)
class Published:
    outcome: Outcome
    event_id: str = ""
    detail: str = ""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(_HIT)

    async def hit(self, rate: Rate) -> RateLimited | None:
        wait = int(await self._hit(keys=[rate.key], args=[rate.limit, rate.window]))
        return RateLimited(wait) if wait else None


class TicketIntake:
    def __init__(self, redis: Redis, maxlen: int) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self._accept = ScriptBatcher(redis, _ACCEPT)

    async def accept(
        self,
        event: TicketReceived,
        *,
        delivery_id: str | None = None,
        rate: Rate = NO_RATE,
        fingerprint: str | None = None,
    ) -> Accepted | RateLimited:
        """Store the ticket and its event once; a repeated source or delivery id returns the first ticket.
        `fingerprint` (of what the client sent) is kept on the ticket so a reused key can be told apart."""
        optional = {
            "title": event.title,
            "language": event.language,
            "caller_hash": event.caller.hash if event.caller else None,
            "caller_masked": event.caller.masked if event.caller else None,
            "contacts": to_json(event.contacts).decode() if event.contacts else None,
            "service_code": event.service_code,
            "media_url": event.media_url,
            "request_fingerprint": fingerprint,
            "ivr_choice": event.ivr_choice,
            "handle_seconds": _num(event.handle_seconds),
            "attributes": json.dumps(event.attributes, ensure_ascii=False) if event.attributes else None,
        }
        if event.location:
            optional |= {
                "lat": _num(event.location.lat),
                "lon": _num(event.location.lon),
                "address": event.location.address,
            }
        at = iso(event.received_at)
        # The hash's fields go as flat arguments: HSET takes them as they are, no JSON decoding in Lua.
        fields = ["status", Status.RECEIVED.value, "channel", event.channel, "text", event.text]
        fields += ["received_at", at, "updated_at", at]
        for name, value in optional.items():
            if value is not None:
                fields += [name, value]
        contract.check_fields(contract.INTAKE, fields[::2])
        bucket, expires = updates_bucket(event.received_at)
        code, value = await self._accept(
            keys=[
                keys.dedupe(event.channel, event.source_id),
                keys.dedupe(f"{event.channel}-delivery", delivery_id) if delivery_id else "",
                streams.RECEIVED,
                keys.ticket(event.ticket_id),
                keys.by_created,
                keys.history(event.ticket_id),
                rate.key,
                bucket,
                keys.unrecorded,
            ],
            args=[
                event.ticket_id,
                DEDUPE_TTL_SECONDS,
                pack(event),
                self.maxlen,
                event.received_at.timestamp(),
                to_json(
                    {
                        "at": at,
                        "event": "received",
                        "summary": f"via {event.channel}",
                        "channel": event.channel,
                        "status": Status.RECEIVED,
                    }
                ),
                rate.limit,
                rate.window,
                expires,
                *fields,
            ],
        )
        if code == -1:
            return RateLimited(int(value))
        return Accepted(ticket_id=as_str(value), duplicate=code == 0)


class EventPublisher:
    """Publishes one event about an existing ticket, once, and records it in the ticket's history."""

    def __init__(self, redis: Redis, maxlen: int) -> None:
        self.maxlen = maxlen
        self._publish = redis.register_script(_PUBLISH)

    async def publish_once(
        self,
        stream: str,
        event: Event,
        *,
        history: dict[str, str],
        dedupe: str | None = None,
        department: str | None = None,
        refuse_statuses: frozenset[Status] = frozenset(),
        rate: Rate = NO_RATE,
    ) -> Published | RateLimited:
        """`dedupe`: a second key (besides the event id) that makes a retry a duplicate; `department`,
        when given, must be the ticket's current one; a ticket in one of `refuse_statuses` is a conflict."""
        code, value = await self._publish(
            keys=[
                rate.key,
                keys.dedupe(stream, event.event_id),
                keys.dedupe(stream, dedupe) if dedupe else "",
                keys.ticket(event.ticket_id),
                stream,
                keys.history(event.ticket_id),
                keys.unrecorded,
            ],
            args=[
                rate.limit,
                rate.window,
                event.event_id,
                DEDUPE_TTL_SECONDS,
                pack(event),
                self.maxlen,
                json.dumps({"at": iso(event.occurred_at), **history}, ensure_ascii=False),
                department or "",
                json.dumps(sorted(refuse_statuses)) if refuse_statuses else "",
                event.ticket_id,
            ],
        )
        code = as_str(code)
        if code == "rate":
            return RateLimited(int(as_str(value)))
        if code == "ok":
            return Published("ok", event.event_id)
        if code == "duplicate":
            return Published("duplicate", as_str(value))
        for outcome in ("missing", "forbidden", "conflict"):
            if code == outcome:
                return Published(outcome, detail=as_str(value))
        raise RuntimeError(f"unexpected script result {code!r}")


def _num(value: float | None) -> str | None:
    return None if value is None else repr(value)
