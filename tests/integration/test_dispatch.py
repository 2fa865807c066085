"""Dispatch against a real Redis: the ticket's life through the batch worker, escalation races, reloads."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.dispatch import state
from services.dispatch.assign import Counts, Demand
from services.dispatch.escalation import Scanner
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.routing import RoutingSource
from shared import streams
from shared.bus import redis_client
from shared.codec import decode
from shared.events import (
    Place,
    TicketClassified,
    TicketEscalated,
    TicketReopened,
    TicketRerouted,
    TicketUpdated,
    utcnow,
)
from shared.store import keys
from tests.integration.dispatch_support import Harness

pytestmark = pytest.mark.redis

ROUTING = """\
timezone: UTC
coordinator: coord
fallback: coord
max_rejections: 3
departments:
  - {id: coord, name: Coordinator}
  - {id: water, name: Water, categories: [utilities], capacity: 200}
  - {id: east_water, name: East water, districts: [donghu], capacity: 200}
  - {id: street_donghu, name: East street office, categories: [utilities], districts: [donghu]}
rules:
  - {category: utilities, department: water, priority: 10}
  - {category: utilities, department: east_water, district: donghu, priority: 20}
fallbacks: {donghu: street_donghu}
"""


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    return path


def rewrite(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(10**9, 10**9))  # a distinct mtime, however fast the test runs


def classified(n: int, *, received_at: datetime | None = None, urgency: str = "general") -> TicketClassified:
    at = received_at or utcnow()
    return TicketClassified(
        event_id=f"c{n}",
        ticket_id=f"T{n}",
        occurred_at=at,
        category="utilities",
        confidence=0.9,
        urgency=urgency,  # type: ignore[arg-type]
        place=Place(district="donghu"),
        model_version="m",
        received_at=at,
    )


def action(n: int, department: str, verb: str, ticket: int = 1) -> TicketUpdated:
    return TicketUpdated(
        event_id=f"u{n}",
        ticket_id=f"T{ticket}",
        occurred_at=utcnow(),
        department=department,
        action=verb,  # type: ignore[arg-type]
        note="outside our area" if verb == "reject" else None,
    )


async def test_a_ticket_lives_through_rejections_acceptance_resolution_and_reopening(
    redis: Redis, routing_file: Path
) -> None:
    h = Harness(redis, routing_file)
    await h.feed(streams.CLASSIFIED, classified(1))
    ticket = await h.store.get_or_raise("T1")
    assert (ticket.status, ticket.department) == ("dispatched", "east_water")
    assert "rule priority 20" in str(ticket.dispatch_reason)  # type: ignore[attr-defined]
    assert await redis.zscore(keys.department_open("east_water"), "T1") is not None
    assert await redis.zscore(state.SLA_DISPATCH, "T1") is not None

    # Two rejections in one batch: the second is from the department the first one re-dispatched to.
    await h.feed(streams.UPDATED, action(1, "east_water", "reject"), action(2, "water", "reject"))
    ticket = await h.store.get_or_raise("T1")
    assert (ticket.status, ticket.department) == ("dispatched", "street_donghu")
    assert ticket.rejected_by == "east_water,water" and ticket.rejections == "2"  # type: ignore[attr-defined]
    assert [d.department for d in await h.dispatched()] == ["east_water", "water", "street_donghu"]
    assert [d.attempt for d in await h.dispatched()] == [1, 2, 3]
    assert await redis.zcard(keys.department_open("east_water")) == 0
    learned = await redis.hgetall(state.ACCEPTANCE)
    assert learned == {b"east_water|utilities|donghu|r": b"1", b"water|utilities|donghu|r": b"1"}

    await h.feed(streams.UPDATED, action(3, "street_donghu", "accept"), action(4, "street_donghu", "resolve"))
    ticket = await h.store.get_or_raise("T1")
    assert ticket.status == "resolved" and ticket.accepted_at and ticket.resolved_at  # type: ignore[attr-defined]
    assert await redis.zscore(state.SLA_DISPATCH, "T1") is None
    assert await redis.zscore(state.SLA_FEEDBACK, "T1") is None
    assert await redis.zcard(keys.department_open("street_donghu")) == 0
    assert await redis.hget(state.ACCEPTANCE, "street_donghu|utilities|donghu|a") == b"1"

    reopen = TicketReopened(
        event_id="r1", ticket_id="T1", occurred_at=utcnow(), reason="not fixed", reopen_count=1
    )
    await h.feed(streams.REOPENED, reopen)
    ticket = await h.store.get_or_raise("T1")
    assert (ticket.status, ticket.department) == ("dispatched", "street_donghu")
    assert (await h.dispatched())[-1].attempt == 4
    # Redelivering what was already applied changes nothing and publishes nothing new.
    await h.feed(streams.REOPENED, reopen)
    assert len(await h.dispatched()) == 4 + 1  # the redelivered event republishes its same id
    assert (await h.dispatched())[-1].event_id == (await h.dispatched())[-2].event_id
    assert await redis.hget(state.ACCEPTANCE, "street_donghu|utilities|donghu|a") == b"1"


async def test_repeats_are_linked_both_ways_and_counted_once_each_on_the_original(
    redis: Redis, routing_file: Path
) -> None:
    h = Harness(redis, routing_file)
    await h.feed(streams.CLASSIFIED, classified(1))
    repeats = [classified(n).model_copy(update={"duplicate_of": "T1"}) for n in (2, 3)]
    await h.feed(streams.CLASSIFIED, *repeats)
    await h.feed(streams.CLASSIFIED, repeats[0])  # redelivered: not counted again

    original = await h.store.get_or_raise("T1")
    assert original.repeat_count == 2 and original.status == "dispatched"
    history = await h.store.history("T1")
    assert [e["repeat"] for e in history if e["event"] == "repeated"] == ["T2", "T3"]
    assert (await h.store.get_or_raise("T2")).duplicate_of == "T1"
    assert len(await h.dispatched()) == 1, "a repeat is not dispatched again"


async def test_an_operators_rerouting_moves_the_ticket_and_counts_against_the_router(
    redis: Redis, routing_file: Path
) -> None:
    h = Harness(redis, routing_file)
    await h.feed(streams.CLASSIFIED, classified(1))
    move = TicketRerouted(
        event_id="m1", ticket_id="T1", occurred_at=utcnow(), operator="op-7", department="street_donghu"
    )
    await h.feed(streams.REROUTED, move)
    ticket = await h.store.get_or_raise("T1")
    assert (ticket.status, ticket.department) == ("dispatched", "street_donghu")
    assert [d.department for d in await h.dispatched()] == ["east_water", "street_donghu"]
    assert await redis.zcard(keys.department_open("east_water")) == 0
    assert await redis.hgetall(state.ACCEPTANCE) == {b"east_water|utilities|donghu|r": b"1"}
    await h.feed(streams.REROUTED, move)  # redelivered: the lesson is learned once
    assert await redis.hgetall(state.ACCEPTANCE) == {b"east_water|utilities|donghu|r": b"1"}


async def test_after_n_rejections_the_ticket_goes_to_the_coordinator(
    redis: Redis, routing_file: Path
) -> None:
    h = Harness(redis, routing_file)
    await h.feed(streams.CLASSIFIED, classified(1))
    for n, dept in enumerate(["east_water", "water", "street_donghu"], start=1):
        await h.feed(streams.UPDATED, action(n, dept, "reject"))
    ticket = await h.store.get_or_raise("T1")
    assert (ticket.status, ticket.department) == ("coordinator", "coord")
    assert await redis.zscore(state.COORDINATOR_QUEUE, "T1") is not None
    assert "after 3 rejections" in (await h.dispatched())[-1].reason


async def test_a_routing_change_applies_to_the_next_batch_without_a_restart(
    redis: Redis, routing_file: Path
) -> None:
    h = Harness(redis, routing_file)
    await h.feed(streams.CLASSIFIED, classified(1))
    rewrite(routing_file, ROUTING.replace("priority: 20", "priority: 0"))
    await h.feed(streams.CLASSIFIED, classified(2))
    assert [d.department for d in await h.dispatched()] == ["east_water", "water"]


async def test_two_scanners_racing_publish_exactly_one_escalation_per_missed_deadline(
    redis: Redis, redis_url: str, routing_file: Path
) -> None:
    h = Harness(redis, routing_file)
    three_hours_ago = utcnow() - timedelta(hours=3)
    tickets = 60
    await h.feed(
        streams.CLASSIFIED,
        *(classified(n, received_at=three_hours_ago, urgency="emergency") for n in range(tickets)),
    )
    owners = [t.department for t in await h.store.get_many([f"T{n}" for n in range(tickets)]) if t]
    await h.feed(
        streams.UPDATED, *(action(n, str(owners[n]), "accept", ticket=n) for n in range(0, tickets, 2))
    )
    # Every emergency missed its 2 h feedback deadline; the odd ones also their 1 h dispatch deadline.
    expected = {("feedback", f"T{n}") for n in range(tickets)} | {
        ("dispatch", f"T{n}") for n in range(1, tickets, 2)
    }

    clients = [redis_client(redis_url) for _ in range(2)]
    scanners = [Scanner(c, DispatchMetrics(CollectorRegistry()), maxlen=10_000, batch=7) for c in clients]
    # Both read the same due entries before either publishes: a true race for every one of them.
    first, second = await asyncio.gather(scanners[0].scan(), scanners[1].scan())
    assert len(first) + len(second) == 14
    assert not {e.event.event_id for e in first} & {e.event.event_id for e in second}

    stop = asyncio.Event()
    for s in scanners:
        s.interval = 0.01
    loops = [asyncio.create_task(s.run(stop)) for s in scanners]
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while await redis.xlen(streams.ESCALATED) < len(expected):
            assert asyncio.get_running_loop().time() < deadline, "escalations did not all arrive"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    try:
        # Scans after the last escalation, awaited rather than slept through: they must publish nothing.
        for _ in range(2):
            assert await asyncio.gather(*(s.scan() for s in scanners)) == [[], []]
    finally:
        for c in clients:
            await c.aclose()

    events = [decode(f, TicketEscalated) for _, f in await redis.xrange(streams.ESCALATED)]
    seen = [(e.reason.split(" ")[0], e.ticket_id) for e in events]
    assert sorted(seen) == sorted(expected), "exactly one escalation per missed deadline"
    counted = sum(
        s.metrics.escalations.labels(kind, "emergency")._value.get()
        for s in scanners
        for kind in ("dispatch", "feedback")
    )
    assert counted == len(expected)
    t1 = await h.store.get_or_raise("T1")
    assert t1.escalated_dispatch_at and t1.escalated_feedback_at  # type: ignore[attr-defined]
    assert t1.status == "dispatched", "escalation flags the ticket; it does not take it away"
    assert await redis.zcard(state.SLA_FEEDBACK) == 0


async def test_a_ticket_accepted_in_time_is_not_escalated(redis: Redis, routing_file: Path) -> None:
    h = Harness(redis, routing_file)
    await h.feed(streams.CLASSIFIED, classified(1, urgency="emergency"))
    await h.feed(streams.UPDATED, action(1, "east_water", "accept"), action(2, "east_water", "resolve"))
    scanner = Scanner(redis, h.metrics, maxlen=10_000)
    assert await scanner.scan(utcnow() + timedelta(days=30)) == []
    assert await redis.xlen(streams.ESCALATED) == 0


def test_timestamps_in_fixtures_are_utc() -> None:
    assert utcnow().tzinfo == UTC


async def test_the_supply_snapshot_counts_each_queue_up_to_each_deadline(
    redis: Redis, routing_file: Path
) -> None:
    table = RoutingSource(routing_file).table
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    for dept, hours in {"water": (1, 30, 100, 200), "street_donghu": (50,), "coord": (500,)}.items():
        await redis.zadd(
            state.queue(dept), {f"{dept}-{h}": (now + timedelta(hours=h)).timestamp() for h in hours}
        )
    await redis.hset(state.ACCEPTANCE, state.acceptance_field("water", "utilities", "donghu", "a"), 7)
    demands = [
        Demand("utilities", "donghu", now + timedelta(hours=24), now + timedelta(hours=h))
        for h in (30, 168, 30)  # the same deadline twice; one exactly on a queued ticket's
    ]
    supply = await state.read_snapshot(redis, table, demands)
    assert [supply.ahead("water", d.feedback_due) for d in demands] == [2, 3, 2]
    assert [supply.ahead("street_donghu", d.feedback_due) for d in demands] == [0, 1, 0]
    assert (
        supply.ahead("east_water", demands[1].feedback_due) == 0
        and supply.ahead("coord", demands[1].feedback_due) == 0
    )
    assert supply.acceptance("water", "utilities", "donghu") == Counts(7, 0)
