"""The recorder on a real Redis and a real PostgreSQL: events once, ticket states equal to the store's,
refused data dead-lettered with the database's reason while the rest is written."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
from redis.asyncio import Redis

from services.recorder.app import RecorderSettings, RecorderWorker, build
from services.recorder.database import Ticket
from shared import streams
from shared.codec import DATA_FIELD, pack
from shared.effects import StoreWrite
from shared.events import ProblemDetected, TicketReceived, TicketUpdated
from shared.store import TicketStore, keys
from shared.worker import Consumer
from tests.integration.conftest import IMMEDIATE
from tests.support import ticket_matches_row

pytestmark = pytest.mark.redis


def consumer_of(worker: RecorderWorker, stream: str) -> Consumer[object]:
    return next(c for c in worker.consumers if c.stream == stream)


def received(n: int, text: str = "路灯不亮", at: datetime | None = None) -> TicketReceived:
    at = at or datetime(2026, 11, 20, 8, n % 60, tzinfo=UTC)
    return TicketReceived(
        event_id=f"ev-{n}",
        ticket_id=f"T{n:05d}",
        occurred_at=at,
        channel="telephony",
        source_id=f"call-{n}",
        text=text,
        received_at=at,
    )


def note(ticket_id: str, at: datetime) -> TicketUpdated:
    return TicketUpdated(event_id="u1", ticket_id=ticket_id, occurred_at=at, department="d", action="note")


async def read_all(redis: Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    reply = await redis.xreadgroup(streams.RECORDER, "test", {stream: ">"}, count=10_000)
    return [entry for _, entries in reply for entry in entries]


async def test_each_event_is_recorded_once_however_often_it_is_delivered(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    for n in range(20):
        await redis.xadd(streams.RECEIVED, {DATA_FIELD: pack(received(n))})
    entries = await read_all(redis, streams.RECEIVED)
    consumer = consumer_of(recorder, streams.RECEIVED)
    first = await recorder.process(consumer, entries)
    again = await recorder.process(consumer, entries)  # a redelivery: the claimer took them over
    assert len(first.done) == len(again.done) == 20
    rows = await pg.fetch("SELECT event_id, ticket_id, stream, body FROM ticket_events ORDER BY event_id")
    assert len(rows) == 20 and len({r["event_id"] for r in rows}) == 20
    body = json.loads(rows[0]["body"])
    assert body["text"] == "路灯不亮" and "event_id" not in body  # kept in its own column
    assert (await redis.xpending(streams.RECEIVED, streams.RECORDER))["pending"] == 0


async def test_a_problems_events_are_recorded_beside_the_tickets_under_the_problems_id(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    detected = ProblemDetected(
        event_id="pd-1",
        ticket_id="P-estate-1",
        occurred_at=datetime(2026, 12, 3, 8, tzinfo=UTC),
        key="estate:幸福里|environment",
        category="environment",
        label="幸福里 垃圾",
        status="open",
        ticket_ids=["T1", "T2", "T3"],
        tickets=3,
        evidence="3 calls of one place and topic in 7 days",
    )
    await redis.xadd(streams.PROBLEMS_DETECTED, {DATA_FIELD: pack(detected)})
    consumer = consumer_of(recorder, streams.PROBLEMS_DETECTED)
    result = await recorder.process(consumer, await read_all(redis, streams.PROBLEMS_DETECTED))
    assert len(result.done) == 1
    (row,) = await pg.fetch("SELECT event_id, ticket_id, stream, body FROM ticket_events")
    assert (row["event_id"], row["ticket_id"], row["stream"]) == ("pd-1", "P-estate-1", "problems.detected")
    assert json.loads(row["body"])["ticket_ids"] == ["T1", "T2", "T3"]


async def test_an_event_the_database_refuses_is_dead_lettered_with_its_reason_and_the_rest_is_written(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    events = [received(n) for n in range(10)]
    events[3] = received(3, text="坏数据\x00")  # PostgreSQL cannot store a NUL character
    events[7] = received(7, at=datetime(2999, 1, 1, tzinfo=UTC))  # no partition that far ahead
    for event in events:
        await redis.xadd(streams.RECEIVED, {DATA_FIELD: pack(event)})
    result = await recorder.process(
        consumer_of(recorder, streams.RECEIVED), await read_all(redis, streams.RECEIVED)
    )
    assert len(result.done) == 8 and len(result.dead) == 2
    kept = {r["event_id"] for r in await pg.fetch("SELECT event_id FROM ticket_events")}
    assert kept == {e.event_id for e in events} - {"ev-3", "ev-7"}
    dead = await redis.xrange(streams.dlq(streams.RECEIVED))
    reasons = {json.loads(f[DATA_FIELD][f[DATA_FIELD].index(b"{") :])["event_id"]: f for _, f in dead}
    assert set(reasons) == {"ev-3", "ev-7"}
    assert all(f[b"reason"] == b"refused_by_database" for f in reasons.values())
    assert b"0x00" in reasons["ev-3"][b"error"] or b"\\u0000" in reasons["ev-3"][b"error"]
    assert b"no partition" in reasons["ev-7"][b"error"]
    assert (await redis.xpending(streams.RECEIVED, streams.RECORDER))["pending"] == 0


async def test_a_ticket_is_recorded_as_the_store_has_it_and_taken_off_the_list_only_once_written(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    store = TicketStore(redis)
    at = "2026-11-20T08:00:00+00:00"
    await store.apply(
        StoreWrite(
            "T1",
            "e1",
            fields={"status": "received", "received_at": at, "text": "水管爆裂"},
            history={"at": at, "event": "received", "summary": "via telephony"},
        ),
        scope="intake",
    )
    await store.apply(StoreWrite("T1", "e1c", fields={"confidence": "0.93"}), scope="classifier")
    # A field no service declares (the store refuses to write one): what an older writer left behind.
    await redis.hset(keys.ticket("T1"), "odd_field", "x")
    await store.apply(
        StoreWrite("T1", "e2", fields={"status": "dispatched", "department": "water"}), scope="dispatch"
    )
    assert await redis.zcard(keys.unrecorded) == 1
    assert await recorder.record_tickets_once() == 1
    assert await redis.zcard(keys.unrecorded) == 0
    row = await pg.fetchrow("SELECT * FROM tickets WHERE ticket_id = 'T1'")
    assert row is not None
    assert ticket_matches_row(await redis.hgetall(keys.ticket("T1")), row) == []
    assert row["confidence"] == 0.93 and json.loads(row["extra"]) == {"odd_field": "x"}
    assert row["rev"] == 3
    history = await pg.fetch("SELECT position, status FROM ticket_history WHERE ticket_id = 'T1'")
    assert [(h["position"], h["status"]) for h in history] == [(0, "received")]

    # A later change is recorded over the older state; an older snapshot never replaces a newer one.
    await store.apply(StoreWrite("T1", "e3", fields={"status": "resolved"}), scope="dispatch")
    await recorder.record_tickets_once()
    assert await pg.fetchval("SELECT status FROM tickets WHERE ticket_id = 'T1'") == "resolved"
    await pg.execute("UPDATE tickets SET rev = 99 WHERE ticket_id = 'T1'")
    await store.apply(StoreWrite("T1", "e4", fields={"status": "closed"}), scope="dispatch")
    await recorder.record_tickets_once()
    assert await pg.fetchval("SELECT status FROM tickets WHERE ticket_id = 'T1'") == "resolved"


async def test_a_ticket_state_no_column_can_hold_is_dead_lettered_and_the_others_are_recorded(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    store = TicketStore(redis)
    at = "2026-11-20T08:00:00+00:00"
    for ticket_id, confidence in (("T1", "0.5"), ("T2", "not a number"), ("T3", "0.7")):
        await store.apply(
            StoreWrite(ticket_id, "e", fields={"status": "received", "received_at": at}), scope="intake"
        )
        await store.apply(StoreWrite(ticket_id, "c", fields={"confidence": confidence}), scope="classifier")
    await recorder.record_tickets_once()
    assert {r["ticket_id"] for r in await pg.fetch("SELECT ticket_id FROM tickets")} == {"T1", "T3"}
    [(_, dead)] = await redis.xrange(streams.RECORDER_DLQ)
    assert dead[b"ticket_id"] == b"T2" and b"confidence" in dead[b"error"]
    assert await redis.zcard(keys.unrecorded) == 0


async def test_an_update_published_by_intake_marks_its_ticket_for_the_recorder(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    from services.intake.writes import EventPublisher, TicketIntake

    event = received(1, at=datetime.now(UTC))
    await TicketIntake(redis, 1000).accept(event)
    await recorder.record_tickets_once()
    update = note(event.ticket_id, datetime.now(UTC))
    await EventPublisher(redis, 1000).publish_once(streams.UPDATED, update, history={"event": "note"})
    assert await redis.zscore(keys.unrecorded, event.ticket_id) is not None
    await recorder.record_tickets_once()
    positions = await pg.fetch("SELECT position FROM ticket_history WHERE ticket_id = $1", event.ticket_id)
    assert sorted(p["position"] for p in positions) == [0, 1]


async def test_a_ticket_is_written_once_it_has_settled_not_at_each_change(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    store = TicketStore(redis)
    fields = {"status": "received", "received_at": "2026-11-20T08:00:00+00:00"}
    await store.apply(StoreWrite("T1", "e1", fields=fields), scope="intake")
    recorder.settle = 60.0
    assert await recorder.record_tickets_once() == 0
    recorder.settle = 0.0
    assert await recorder.record_tickets_once() == 1


async def test_a_ticket_at_rest_is_written_before_its_settle_time_and_one_half_way_is_not(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    store = TicketStore(redis)
    at = "2026-11-20T08:00:01+00:00"
    received = {"status": "received", "received_at": "2026-11-20T08:00:00+00:00"}
    for ticket_id in ("T1", "T2", "T3"):
        await store.apply(StoreWrite(ticket_id, f"{ticket_id}-r", fields=received), scope="intake")
    dispatched = {"status": "dispatched", "dispatched_at": at}
    await store.apply(StoreWrite("T1", "T1-d", fields=dispatched), scope="dispatch")  # not counted yet
    await store.apply(StoreWrite("T2", "T2-d", fields=dispatched), scope="dispatch")
    await store.apply(StoreWrite("T2", "T2-e", fields={"eval_dispatched_at": at}), scope="evaluation")
    await store.apply(StoreWrite("T3", "T3-d", fields={"status": "duplicate"}), scope="dispatch")
    recorder.settle = 60.0
    assert await recorder.record_tickets_once() == 2
    rows = await pg.fetch("SELECT ticket_id FROM tickets")
    assert sorted(r["ticket_id"] for r in rows) == ["T2", "T3"]
    await store.apply(StoreWrite("T1", "T1-e", fields={"eval_dispatched_at": at}), scope="evaluation")
    assert await recorder.record_tickets_once() == 1


async def test_a_ticket_not_at_rest_waits_twice_as_long_as_the_tickets_coming_to_rest_took(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    store = TicketStore(redis)
    received = {"status": "received", "received_at": "2026-11-20T08:00:00+00:00"}
    recorder.settle, recorder.settle_max = 5.0, 60.0
    await store.apply(StoreWrite("T1", "T1-r", fields={**received, "status": "duplicate"}), scope="intake")
    now = time.time()
    await redis.zadd(keys.unrecorded, {"T1": now - 10})  # when it first changed
    assert await recorder.record_tickets_once() == 1  # T1 took 10 s to come to rest: others wait 20 s
    await store.apply(StoreWrite("T2", "T2-r", fields=received), scope="intake")
    await redis.zadd(keys.unrecorded, {"T2": now - 15})
    assert await recorder.record_tickets_once() == 0
    await redis.zadd(keys.unrecorded, {"T2": now - 25})
    assert await recorder.record_tickets_once() == 1
    recorder.settle_max = 15.0  # never longer than this
    await store.apply(StoreWrite("T2", "T2-u", fields={"title": "x"}), scope="intake")
    await redis.zadd(keys.unrecorded, {"T2": now - 16})
    assert await recorder.record_tickets_once() == 1


@pytest.mark.parametrize("lease", [60.0, 0.0])
async def test_replicas_take_each_ticket_once_and_a_late_older_state_never_replaces_a_newer_one(
    redis: Redis,
    recorder: RecorderWorker,
    redis_url: str,
    database_url: str,
    pg: asyncpg.Connection,
    lease: float,
) -> None:
    """Two replicas share the to-do list. One takes a ticket, and before it commits the ticket changes. With
    its lease (the default) the other replica does not take the ticket meanwhile, and the change is written
    at a later pass. A write slower than its lease (0 here) lets the other replica take the ticket and record
    the newer state first: the late commit of the older one changes nothing. Either way the record ends with
    the newest state and the ticket is not left off the to-do list before that."""
    recorder.lease = lease
    other, _ = build(RecorderSettings(redis_url=redis_url, database_url=database_url, **IMMEDIATE))
    store = TicketStore(redis)
    at = "2026-11-20T08:00:00+00:00"
    await store.apply(
        StoreWrite(
            "T1",
            "e1",
            fields={"status": "received", "received_at": at},
            history={"at": at, "event": "received"},
        ),
        scope="intake",
    )
    write = recorder.database.write_tickets

    async def late(snapshots: list[Ticket]) -> list[tuple[int, str]]:
        assert [(t.ticket_id, t.rev) for t in snapshots] == [("T1", 1)]
        resolved = "2026-11-20T09:00:00+00:00"
        await store.apply(
            StoreWrite(
                "T1", "e2", fields={"status": "resolved"}, history={"at": resolved, "event": "resolved"}
            ),
            scope="dispatch",
        )
        taken.append(await other.record_tickets_once())
        return await write(snapshots)

    taken: list[int] = []

    recorder.database.write_tickets = late  # type: ignore[method-assign]
    try:
        await recorder.record_tickets_once()
        if lease:
            assert taken == [0]  # hidden from the other replica while taken
            assert await pg.fetchval("SELECT rev FROM tickets WHERE ticket_id = 'T1'") == 1
            assert await other.record_tickets_once() == 1  # changed while taken: listed again
        else:
            assert taken == [1]
    finally:
        await other.database.close()
        await other.redis.aclose()
    row = await pg.fetchrow("SELECT * FROM tickets WHERE ticket_id = 'T1'")
    assert row["rev"] == 2 and row["status"] == "resolved"
    assert ticket_matches_row(await redis.hgetall(keys.ticket("T1")), row) == []
    assert await pg.fetchval("SELECT count(*) FROM ticket_history WHERE ticket_id = 'T1'") == 2
    assert await redis.zcard(keys.unrecorded) == 0


async def test_one_read_of_every_stream_is_written_in_one_transaction_and_acked(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    for n in range(3):
        await redis.xadd(streams.RECEIVED, {DATA_FIELD: pack(received(n))})
    await redis.xadd(streams.RECEIVED, {DATA_FIELD: b"not an event"})
    await redis.xadd(
        streams.UPDATED, {DATA_FIELD: pack(note("T00001", datetime(2026, 11, 20, 9, tzinfo=UTC)))}
    )
    commits = 0
    write = recorder.database.write_events

    async def counted(rows: Sequence[tuple[object, ...]]) -> list[tuple[int, str]]:
        nonlocal commits
        commits += 1
        return await write(rows)

    recorder.database.write_events = counted  # type: ignore[method-assign]
    await recorder.start_background()
    try:
        for _ in range(100):
            if await pg.fetchval("SELECT count(*) FROM ticket_events") == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await recorder.stop_background()
    assert commits == 1
    streams_of = await pg.fetch("SELECT stream, count(*) FROM ticket_events GROUP BY stream ORDER BY 1")
    assert [(r["stream"], r["count"]) for r in streams_of] == [(streams.RECEIVED, 3), (streams.UPDATED, 1)]
    for stream in (streams.RECEIVED, streams.UPDATED):
        assert (await redis.xpending(stream, streams.RECORDER))["pending"] == 0
    [(_, dead)] = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert dead[b"reason"] in (b"invalid", b"undecodable")


async def test_tickets_a_replica_took_and_never_wrote_are_written_by_another_once_its_lease_ends(
    redis: Redis, recorder: RecorderWorker, redis_url: str, database_url: str, pg: asyncpg.Connection
) -> None:
    store = TicketStore(redis)
    fields = {"status": "received", "received_at": "2026-11-20T08:00:00+00:00"}
    for ticket_id in ("T1", "T2"):
        await store.apply(StoreWrite(ticket_id, "e1", fields=fields), scope="intake")

    async def dies(snapshots: list[Ticket]) -> list[tuple[int, str]]:
        raise RuntimeError("the replica died with its tickets taken")

    recorder.lease = 0.5
    recorder.database.write_tickets = dies  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await recorder.record_tickets_once()
    other, _ = build(RecorderSettings(redis_url=redis_url, database_url=database_url, **IMMEDIATE))
    try:
        assert await other.record_tickets_once() == 0  # still taken
        assert await redis.zcard(keys.unrecorded) == 2  # and still listed: never evicted unrecorded
        await asyncio.sleep(0.6)
        assert await other.record_tickets_once() == 2
    finally:
        await other.database.close()
        await other.redis.aclose()
    assert await pg.fetchval("SELECT count(*) FROM tickets") == 2
    assert await redis.zcard(keys.unrecorded) == 0
