"""What dispatch keeps in Redis besides the ticket hash, and the supply snapshot read from it."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel
from redis.asyncio import Redis

from services.dispatch.assign import NO_DISTRICT, Counts, Demand, candidates
from services.dispatch.routing import RoutingTable
from shared.bus import RoundTrip
from shared.store import PREFIX

SLA_DISPATCH = f"{PREFIX}:sla:dispatch_due"
"""Tickets not yet accepted, scored by their dispatch deadline."""
SLA_FEEDBACK = f"{PREFIX}:sla:feedback_due"
"""Tickets not yet resolved, scored by their feedback deadline."""
ACCEPTANCE = f"{PREFIX}:dispatch:acceptance"
"""Hash of learned counts: `{department}|{category}|{district}|a` (accepts) and `|r` (rejects)."""
COORDINATOR_QUEUE = f"{PREFIX}:dispatch:coordinator"
"""Tickets handed to the coordinator after too many rejections, scored by when."""
OUTBOUND_DUE = f"{PREFIX}:dispatch:outbound:due"
"""Webhook deliveries (event ids) scored by when the next try is due: the retry schedule."""
OUTBOUND_JOBS = f"{PREFIX}:dispatch:outbound:jobs"
"""Hash event id -> delivery (department, body, attempts)."""


class OutboundJob(BaseModel):
    """A webhook delivery waiting in `OUTBOUND_JOBS`: the body is the event's JSON, a TicketDispatched or,
    for a citizen's comment, a TicketUpdated with `action: comment`."""

    department: str
    body: str
    attempts: int = 0


def queue(department: str) -> str:
    """A department's open tickets scored by feedback deadline: its work queue, earliest due first."""
    return f"{PREFIX}:dispatch:queue:{department}"


def outbound_sent(event_id: str) -> str:
    return f"{PREFIX}:dispatch:outbound:sent:{event_id}"


_COUNT_AHEAD = """
local out = {}
for i, due in ipairs(ARGV) do out[i] = redis.call('ZCOUNT', KEYS[1], '-inf', due) end
return out
"""
"""Open tickets in a queue (KEYS[1]) due no later than each deadline (ARGV): ZCOUNT -inf..due of each."""


def acceptance_field(department: str, category: str, district: str | None, kind: str) -> str:
    return f"{department}|{category}|{district or NO_DISTRICT}|{kind}"


class Snapshot:
    """Supply as read at the start of a batch, plus what the batch itself has assigned so far."""

    def __init__(
        self, ahead: dict[tuple[str, float], int], counts: dict[tuple[str, str, str | None], Counts]
    ) -> None:
        self._ahead = ahead
        self._counts = counts
        self._added: dict[str, list[float]] = defaultdict(list)  # sorted: a batch asks once per candidate

    def ahead(self, department: str, due: datetime) -> int:
        ts = due.timestamp()
        return self._ahead.get((department, ts), 0) + bisect_right(self._added[department], ts)

    def acceptance(self, department: str, category: str, district: str | None) -> Counts:
        return self._counts.get((department, category, district), Counts())

    def added(self, department: str, due: datetime) -> None:
        insort(self._added[department], due.timestamp())


def departments_for(table: RoutingTable, demand: Demand) -> list[str]:
    found = [c.department for c in candidates(table, demand.category, demand.district)]
    return [*found, table.fallback_for(demand.district), table.coordinator]


async def read_snapshot(redis: Redis, table: RoutingTable, demands: Iterable[Demand]) -> Snapshot:
    """One pipelined round trip: queue depth ahead of each demand and acceptance counts per candidate."""
    ahead_keys: list[tuple[str, float]] = []
    count_keys: list[tuple[str, str, str | None]] = []
    for demand in demands:
        for dept in departments_for(table, demand):
            ahead_keys.append((dept, demand.feedback_due.timestamp()))
            count_keys.append((dept, demand.category, demand.district))
    count_keys = list(dict.fromkeys(count_keys))
    if not ahead_keys:
        return Snapshot({}, {})
    deadlines: dict[str, list[float]] = defaultdict(list)
    for dept, ts in dict.fromkeys(ahead_keys):
        deadlines[dept].append(ts)
    trip = RoundTrip(redis, transaction=False)
    for dept, due in deadlines.items():
        # One script per department instead of one ZCOUNT per ticket and department: a batch of 100
        # asked about 500 counts, and parsing each reply was most of the snapshot's cost.
        trip.eval(_COUNT_AHEAD, 1, queue(dept), *due)
    for dept, category, district in count_keys:
        trip.command(
            "HMGET",
            ACCEPTANCE,
            acceptance_field(dept, category, district, "a"),
            acceptance_field(dept, category, district, "r"),
        )
    replies = await trip.execute()
    ahead = {
        (dept, ts): int(n)
        for (dept, due), found in zip(deadlines.items(), replies[: len(deadlines)], strict=True)
        for ts, n in zip(due, found, strict=True)
    }
    counts = {
        k: Counts(int(a or 0), int(r or 0))
        for k, (a, r) in zip(count_keys, replies[len(deadlines) :], strict=True)
    }
    return Snapshot(ahead, counts)
