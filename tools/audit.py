"""Auditing a run: did every accepted ticket come out the other end, and exactly once?

Used by the fault suite and the chaos benchmark, and handy after an incident.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import streams
from shared.bus import read_range
from shared.codec import decode
from shared.events import STREAM_EVENTS
from shared.store import TicketStore, keys


@dataclass(frozen=True)
class Audit:
    tickets: int
    missing: list[str]  # accepted, never dispatched
    store_twice: list[str]  # a step recorded twice in the ticket's history (must never happen)
    published_twice: dict[str, int]  # stream -> tickets whose output event was appended more than once
    evaluated: int  # dispatches counted by evaluation

    @property
    def lost(self) -> int:
        return len(self.missing)


async def audit(redis: Redis, ticket_ids: list[str]) -> Audit:
    store = TicketStore(redis)
    missing, twice = [], []
    for ticket_id, ticket in zip(ticket_ids, await store.get_many(ticket_ids), strict=True):
        if ticket is None or ticket.dispatched_at is None:
            missing.append(ticket_id)
            continue
        steps = Counter(h.get("event") for h in await store.history(ticket_id))
        if steps["classified"] > 1 or steps["dispatched"] > 1:
            twice.append(ticket_id)
    wanted = set(ticket_ids)
    published_twice = {}
    for stream in (streams.CLASSIFIED, streams.DISPATCHED):
        seen = Counter(
            ticket_id
            for _, fields in await read_range(redis, stream)
            if (ticket_id := decode(fields, STREAM_EVENTS[stream]).ticket_id) in wanted
        )
        published_twice[stream] = sum(1 for n in seen.values() if n > 1)
    counters = await redis.hgetall(keys.counters("dispatched_by_department"))
    evaluated = sum(int(v) for v in counters.values())
    return Audit(len(ticket_ids), missing, twice, published_twice, evaluated)
