"""Escalation of overdue tickets: exactly one event per missed deadline, however many replicas scan.

Deadlines live in two sorted sets (`state.SLA_DISPATCH`, `state.SLA_FEEDBACK`), scored by when they
fall due; accepting or resolving a ticket removes it. A scanner reads what is due, builds the escalation
event, and hands it to a Lua script that publishes it only if it can still remove the timer entry: the
ZREM is the claim, so of several replicas racing for one ticket exactly one publishes (and counts the
metric). A scanner that dies before the script ran leaves the timer in place for the next scan.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from redis.asyncio import Redis

from services.dispatch import state
from services.dispatch.metrics import DispatchMetrics
from shared import contract, streams
from shared.codec import DATA_FIELD, pack
from shared.events import TicketEscalated, utcnow
from shared.ids import derive_id
from shared.store import MARK_CHANGED, TicketStore, iso, keys
from shared.worker import every

log = logging.getLogger("hotline.dispatch.escalation")

Kind = Literal["dispatch", "feedback"]
TIMERS: dict[Kind, str] = {"dispatch": state.SLA_DISPATCH, "feedback": state.SLA_FEEDBACK}
MISSED: dict[Kind, str] = {"dispatch": "not accepted", "feedback": "not resolved"}

_ESCALATE = (
    MARK_CHANGED
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', ARGV[4], ARGV[5])
redis.call('HSET', KEYS[3], ARGV[6], ARGV[7])
redis.call('RPUSH', KEYS[4], ARGV[8])
mark_changed(KEYS[3], KEYS[5], ARGV[1])
return 1
"""
)


@dataclass(frozen=True)
class Escalated:
    kind: Kind
    urgency: str
    event: TicketEscalated


class Scanner:
    def __init__(
        self,
        redis: Redis,
        metrics: DispatchMetrics,
        *,
        maxlen: int,
        interval: float = 5.0,
        batch: int = 200,
    ) -> None:
        self.redis = redis
        self.store = TicketStore(redis)
        self.metrics = metrics
        self.maxlen = maxlen
        self.interval = interval
        self.batch = batch
        self._escalate = redis.register_script(_ESCALATE)
        contract.check_fields(contract.DISPATCH, [f"escalated_{kind}_at" for kind in TIMERS])

    async def scan(self, now: datetime | None = None) -> list[Escalated]:
        """One pass over both timers; returns the escalations this scanner published."""
        now = now or utcnow()
        published: list[Escalated] = []
        for kind, timer in TIMERS.items():
            rows = cast(
                list[tuple[bytes, float]],
                await self.redis.zrangebyscore(
                    timer, "-inf", now.timestamp(), start=0, num=self.batch, withscores=True
                ),
            )
            if not rows:
                continue
            ids = [member.decode() for member, _ in rows]
            tickets = await self.store.get_many(ids)
            for ticket_id, (_, score), ticket in zip(ids, rows, tickets, strict=True):
                if ticket is None:  # the ticket is gone: nothing to escalate, drop its timer
                    await self.redis.zrem(timer, ticket_id)
                    continue
                overdue = datetime.fromtimestamp(score, UTC)
                event = TicketEscalated(
                    event_id=derive_id(ticket_id, "escalated", kind, repr(score)),
                    ticket_id=ticket_id,
                    occurred_at=now,
                    department=ticket.department,
                    reason=f"{kind} deadline passed: {MISSED[kind]} by {ticket.department or 'anyone'} "
                    f"by {iso(overdue)} ({ticket.urgency or 'general'})",
                    overdue_since=overdue,
                )
                history = {"at": iso(now), "event": "escalated", "kind": kind, "summary": event.reason}
                won = await self._escalate(
                    keys=[
                        timer,
                        streams.ESCALATED,
                        keys.ticket(ticket_id),
                        keys.history(ticket_id),
                        keys.unrecorded,
                    ],
                    args=[
                        ticket_id,
                        repr(score),
                        self.maxlen,
                        DATA_FIELD,
                        pack(event),
                        f"escalated_{kind}_at",
                        iso(now),
                        json.dumps(history, ensure_ascii=False),
                    ],
                )
                if won:
                    urgency = ticket.urgency or "general"
                    self.metrics.escalations.labels(kind, urgency).inc()
                    published.append(Escalated(kind, urgency, event))
                    log.warning("escalated %s: %s", ticket_id, event.reason)
        return published

    async def _scan_backlog(self) -> None:
        while len(await self.scan()) >= self.batch:  # a backlog: keep going before sleeping
            pass

    async def run(self, stop: asyncio.Event) -> None:
        await every(stop, self.interval, self._scan_backlog, log, "escalation scan")
