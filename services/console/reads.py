"""What the console's pages read: the ticket store, the review queue, departments' open sets, the 三率
tables and insight's results. Reads only: every change goes through `services.intake.actions`."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from services.evaluation.rates import Board, board, bucket_of, load_table
from services.insight.plan_data import PLAN
from services.insight.problem_store import load_problems
from services.insight.state import EMERGING, FORECAST, load_all_episodes, split_series
from shared.bus import as_str
from shared.rehydration import RecordReader
from shared.status import CLOSED, Status
from shared.store import Ticket, TicketStore, keys

# HMGET of the same fields of many hashes; a missing field comes back as nil (None in Python).
_HMGET_MANY = """
local out, n = {}, 0
for _, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for i = 1, #ARGV do n = n + 1; out[n] = values[i] end
end
return out
"""
REVIEW_PAGE = 50
REVIEW_SCAN = 5_000
INBOX_PAGE = 50
# What a deadline needs: read for every open ticket of a department, the rest only for the page shown.
DEADLINE_FIELDS = ("status", "department", "dispatch_due_at", "feedback_due_at")


@dataclass(frozen=True)
class Row:
    """A ticket as a list shows it: the ticket, the deadline that matters now and its flags."""

    ticket: Ticket
    deadline: datetime | None
    overdue: bool
    escalated: bool

    @property
    def extra(self) -> dict[str, Any]:
        return self.ticket.model_extra or {}

    @property
    def awaits_review(self) -> bool:
        """The classifier was unsure of the category and no operator has answered for it yet: only then
        is confirming it worth a click (a correction is always offered)."""
        return self.extra.get("needs_review") == "1" and self.extra.get("category_source") != "operator"

    @property
    def alternatives(self) -> list[tuple[str, float]]:
        try:
            return [(str(c), float(p)) for c, p in json.loads(self.extra.get("alternatives") or "[]")]
        except (ValueError, TypeError):
            return []


def row_of(ticket: Ticket, now: datetime) -> Row:
    # Before the department signs for it, the dispatch deadline runs; after, the feedback deadline.
    due = (
        ticket.dispatch_due_at
        if ticket.status in (Status.DISPATCHED, Status.COORDINATOR)
        else ticket.feedback_due_at
    )
    extra = ticket.model_extra or {}
    escalated = bool(extra.get("escalated_dispatch_at") or extra.get("escalated_feedback_at"))
    open_ = ticket.status not in CLOSED
    return Row(ticket, due, bool(open_ and due is not None and due < now), escalated)


class Reads:
    def __init__(self, redis: Redis, min_volume: int, record: RecordReader | None) -> None:
        """`record`: where a ticket that left Redis is read back from (the ticket page only: the lists
        show what Redis holds, and a closed ticket leaves them before it leaves Redis)."""
        self.redis, self.store, self.min_volume = redis, TicketStore(redis, record), min_volume
        self._hmget_many = redis.register_script(_HMGET_MANY)
        self._cache: dict[str, tuple[float, Any]] = {}

    async def review_queue(self, now: datetime) -> tuple[list[Row], int]:
        """The tickets waiting for review, emergencies first, then the oldest first (closed or already
        reviewed ones are skipped): the first `REVIEW_PAGE` of the oldest `REVIEW_SCAN`, and how many the
        queue holds."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.review, 0, REVIEW_SCAN - 1)
            pipe.zcard(keys.review)
            ids, total = await pipe.execute()
        # The queue is kept by receipt; an emergency read last would wait behind every routine ticket.
        urgent = {t for t, (urgency,) in await self.fields(ids, ("urgency",)) if urgency == "emergency"}
        named = [as_str(i) for i in ids if isinstance(i, bytes | str)]
        named.sort(key=lambda t: t not in urgent)
        tickets = await self.store.get_many(named[:REVIEW_PAGE], rehydrate=False)
        rows = [
            row_of(t, now)
            for t in tickets
            if t is not None
            and t.status not in CLOSED
            and (t.model_extra or {}).get("category_source") != "operator"
        ]
        return rows, int(total)

    async def inbox(self, department: str, now: datetime) -> tuple[list[Row], int, int]:
        """A department's open tickets, the nearest deadline first (overdue ones on top): the first
        `INBOX_PAGE` of them, how many it has, and how many are overdue."""
        ids = await self.redis.zrange(keys.department_open(department), 0, -1)
        far = datetime.max.replace(tzinfo=UTC)
        due: list[tuple[datetime, str]] = []
        for ticket_id, values in await self.fields(ids, DEADLINE_FIELDS):
            status, owner, dispatch_due, feedback_due = values
            if owner != department or status in CLOSED or status is None:
                continue
            # As `row_of` decides, without building a ticket for each of hundreds of open tickets.
            at = dispatch_due if status in ("dispatched", "coordinator") else feedback_due
            due.append((datetime.fromisoformat(at) if at else far, ticket_id))
        due.sort()
        page = await self.store.get_many([ticket_id for _, ticket_id in due[:INBOX_PAGE]], rehydrate=False)
        rows = [row_of(t, now) for t in page if t is not None]
        return rows, len(due), sum(at < now for at, _ in due)

    async def fields(self, ids: Sequence[Any], fields: Sequence[str]) -> list[tuple[str, list[str | None]]]:
        """(ticket id, the fields' values as text) of each ticket: a page's quick look at many tickets,
        in one script call (a pipeline of one HMGET per ticket costs the client more than Redis)."""
        names = [as_str(i) for i in ids if isinstance(i, bytes | str)]
        if not names:
            return []
        flat = await self._hmget_many(keys=[keys.ticket(t) for t in names], args=list(fields))
        width = len(fields)
        return [
            (ticket_id, [None if v is None else as_str(v) for v in flat[n * width : (n + 1) * width]])
            for n, ticket_id in enumerate(names)
        ]

    async def counts(self, departments: list[str]) -> dict[str, int]:
        """The numbers the header shows, live: tickets waiting for review and each department's open set."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.review)
            for d in departments:
                pipe.zcard(keys.department_open(d))
            found = await pipe.execute()
        return {"review": int(found[0]), **{d: int(n) for d, n in zip(departments, found[1:], strict=True)}}

    async def ticket(self, ticket_id: str) -> tuple[Ticket | None, list[dict[str, Any]]]:
        """The ticket and its timeline; one that left Redis is brought back from the record (as Open311
        does), so a link in an old e-mail or a search over history still opens it."""
        ticket = await self.store.get(ticket_id)
        return ticket, (await self.store.history(ticket_id) if ticket else [])

    async def _cached(self, name: str, seconds: float, load: Any) -> Any:
        """Figures that are costly to gather and change slowly are shared by every viewer for a moment."""
        hit = self._cache.get(name)
        if hit and time.monotonic() - hit[0] < seconds:
            return hit[1]
        value = await load()
        self._cache[name] = (time.monotonic(), value)
        return value

    async def board(self, month: str) -> Board:
        return board(await load_table(self.redis, "month", month), "month", month, self.min_volume)

    async def open_by_district(self, departments: list[str]) -> Counter[str]:
        """Open tickets per district (from every department's open set), refreshed at most every 2 s."""

        async def load() -> Counter[str]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for d in departments:
                    pipe.zrange(keys.department_open(d), 0, -1)
                sets = await pipe.execute()
            ids = list(dict.fromkeys(i for s in sets for i in s))
            return Counter(
                district or "-"
                for _, (district, status) in await self.fields(ids, ("district", "status"))
                if status is not None and status not in CLOSED
            )

        result: Counter[str] = await self._cached("open_by_district", 2.0, load)
        return result

    async def hotspots(self) -> list[dict[str, Any]]:
        """Surge episodes, the latest first, with their category and district."""
        episodes = await load_all_episodes(self.redis)
        out = []
        for e in sorted(episodes, key=lambda e: -e.last_hour):
            category, district = split_series(e.series)
            out.append(
                {
                    "category": category,
                    "district": district,
                    "start": datetime.fromtimestamp(e.start_hour * 3600, UTC),
                    "last": datetime.fromtimestamp(e.last_hour * 3600, UTC),
                    "peak": e.peak_count,
                    "expected": e.expected,
                    "probability": e.probability,
                }
            )
        return out

    async def insight(self, month: str) -> dict[str, Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(FORECAST)
            pipe.get(EMERGING)
            pipe.get(keys.chronic(month))
            forecast, emerging, chronic = await pipe.execute()
        return {
            "forecast": _json(forecast, {}),
            "emerging": _json(emerging, []),
            "chronic": _json(chronic, []),
        }

    async def problems(self, limit: int = 20) -> list[dict[str, Any]]:
        """Problems still in play first (open, reopened, actioned, resolved), then the evaluated ones, each
        group the latest first."""
        found = sorted((await load_problems(self.redis)).values(), key=lambda p: p.last_seen, reverse=True)
        found.sort(key=lambda p: p.status == "evaluated")
        return [p.model_dump(mode="json", exclude={"daily", "returned"}) for p in found[:limit]]

    async def plan(self) -> dict[str, Any] | None:
        """The week's plan insight made, with its busiest hours and the departments' short days."""
        plan: dict[str, Any] | None = _json(await self.redis.get(PLAN), None)
        if plan is None:
            return None
        hours = plan.get("hours", [])
        plan["peak"] = sorted(hours, key=lambda h: -h["agents_erlang_c"])[:6]
        plan["short"] = [d for d in plan.get("departments", []) if d.get("short")]
        return plan

    async def supervision(self, limit: int = 20) -> list[str]:
        ids = await self.redis.zrevrange(keys.supervision, 0, limit - 1)
        return [as_str(i) for i in ids if isinstance(i, bytes | str)]


def _json(raw: bytes | str | None, default: Any) -> Any:
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def month_of(now: datetime, zone: Any) -> str:
    return bucket_of("month", now, zone)
