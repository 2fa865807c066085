"""Accepting a ticket: one atomic Redis script de-duplicates, appends the event and writes the projection.

Atomic on purpose: a de-duplication marker written without its XADD (Redis fails between the two)
would make the provider's retry look like a duplicate and lose the ticket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import streams
from shared.codec import encode
from shared.events import TicketReceived
from shared.store import iso, keys

DEDUPE_TTL_SECONDS = 7 * 24 * 3600

_ACCEPT = """
for i = 1, 2 do
  if KEYS[i] ~= '' then
    local seen = redis.call('GET', KEYS[i])
    if seen then return {0, seen} end
  end
end
for i = 1, 2 do
  if KEYS[i] ~= '' then redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2]) end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', '__data__', ARGV[3])
local fields = cjson.decode(ARGV[5])
local flat = {}
for k, v in pairs(fields) do flat[#flat + 1] = k; flat[#flat + 1] = v end
redis.call('HSET', KEYS[4], unpack(flat))
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
redis.call('RPUSH', KEYS[6], ARGV[7])
return {1, ARGV[1]}
"""


@dataclass(frozen=True)
class Accepted:
    ticket_id: str
    duplicate: bool


class TicketIntake:
    def __init__(self, redis: Redis, maxlen: int) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self._accept = redis.register_script(_ACCEPT)

    async def accept(self, event: TicketReceived, *, delivery_id: str | None = None) -> Accepted:
        """Store the ticket and its event once; a repeated source or delivery id returns the first ticket."""
        fields = {
            "status": "received",
            "channel": event.channel,
            "text": event.text,
            "received_at": iso(event.received_at),
            "updated_at": iso(event.received_at),
        }
        optional = {
            "title": event.title,
            "language": event.language,
            "caller_hash": event.caller.hash if event.caller else None,
            "caller_masked": event.caller.masked if event.caller else None,
            "service_code": event.service_code,
            "ivr_choice": event.ivr_choice,
        }
        if event.location:
            optional |= {
                "lat": _num(event.location.lat),
                "lon": _num(event.location.lon),
                "address": event.location.address,
            }
        fields |= {k: v for k, v in optional.items() if v is not None}
        history = {"at": iso(event.received_at), "event": "received", "summary": f"via {event.channel}"}
        result = await self._accept(
            keys=[
                keys.dedupe(event.channel, event.source_id),
                keys.dedupe(f"{event.channel}-delivery", delivery_id) if delivery_id else "",
                streams.RECEIVED,
                keys.ticket(event.ticket_id),
                keys.by_created,
                keys.history(event.ticket_id),
            ],
            args=[
                event.ticket_id,
                DEDUPE_TTL_SECONDS,
                await encode(event),
                self.maxlen,
                json.dumps(fields, ensure_ascii=False),
                event.received_at.timestamp(),
                json.dumps(history, ensure_ascii=False),
            ],
        )
        created, ticket_id = result
        return Accepted(
            ticket_id=ticket_id.decode() if isinstance(ticket_id, bytes) else ticket_id, duplicate=not created
        )


def _num(value: float | None) -> str | None:
    return None if value is None else repr(value)
