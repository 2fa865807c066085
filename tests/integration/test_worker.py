"""The batch worker against a real Redis: commit, dead letters, retries, the claimer, idempotent writes."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from shared import contract, streams
from shared.codec import DATA_FIELD, decode, pack
from shared.effects import Effects, Increment, Publish, StoreWrite
from shared.events import TicketClassified, TicketReceived
from shared.ids import derive_id
from shared.settings import CommonSettings
from shared.store import TicketStore
from shared.worker import Consumer, Worker

pytestmark = pytest.mark.redis
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
GROUP = streams.CLASSIFIER


def received(n: int) -> TicketReceived:
    return TicketReceived(
        event_id=f"e{n}",
        ticket_id=f"T{n}",
        occurred_at=T0,
        channel="telephony",
        source_id=f"c{n}",
        text=f"text {n}",
        received_at=T0,
    )


async def handler(events: list[TicketReceived]) -> list[Effects]:
    out = []
    for e in events:
        if "boom" in e.text:
            raise RuntimeError(f"cannot handle {e.ticket_id}")
        c = TicketClassified(
            event_id=derive_id(e.event_id, "c"),
            ticket_id=e.ticket_id,
            occurred_at=T0,
            category="transport",
            confidence=0.9,
            model_version="t",
            received_at=T0,
        )
        out.append(
            Effects(
                publish=[Publish(streams.CLASSIFIED, c)],
                writes=[
                    StoreWrite(
                        e.ticket_id,
                        c.event_id,
                        fields={"category": "transport"},
                        history={"event": "classified"},
                        ops=[Increment("hotline:dupes:test:n", "n")],
                    )
                ],
            )
        )
    return out


def make_worker(redis: Redis, **settings: Any) -> tuple[Worker, Consumer[TicketReceived]]:
    consumer = Consumer(streams.RECEIVED, GROUP, TicketReceived, handler)
    worker = Worker(service="test", settings=CommonSettings(**settings), redis=redis, consumers=[consumer])
    return worker, consumer


async def add(redis: Redis, *events: TicketReceived, raw: list[dict[bytes, bytes]] | None = None) -> None:
    for e in events:
        await redis.xadd(streams.RECEIVED, {DATA_FIELD: pack(e)})
    for fields in raw or []:
        await redis.xadd(streams.RECEIVED, fields)  # type: ignore[arg-type]


async def read(redis: Redis, consumer: str = "w1") -> list[tuple[bytes, dict[bytes, bytes]]]:
    reply = await redis.xreadgroup(GROUP, consumer, {streams.RECEIVED: ">"}, count=100)
    return list(reply[0][1]) if reply else []


async def pending(redis: Redis) -> int:
    return int((await redis.xpending(streams.RECEIVED, GROUP))["pending"])


async def test_groups_start_at_zero_so_early_events_are_not_skipped(redis: Redis) -> None:
    await redis.flushdb()
    await add(redis, received(1))
    from shared.bus import init_streams

    await init_streams(redis)
    assert len(await read(redis)) == 1


async def test_outputs_writes_and_ack_commit_together(redis: Redis) -> None:
    worker, consumer = make_worker(redis)
    await add(redis, *(received(i) for i in range(5)))
    result = await worker.process(consumer, await read(redis))
    assert len(result.done) == 5 and not result.dead and not result.retry
    assert await redis.xlen(streams.CLASSIFIED) == 5
    assert await pending(redis) == 0
    ticket = await TicketStore(redis).get_or_raise("T3")
    assert ticket.category == "transport"
    out = await redis.xrange(streams.CLASSIFIED, count=1)
    assert decode(out[0][1], TicketClassified).ticket_id == "T0"


async def test_a_batch_reads_back_only_the_fields_it_asks_for(redis: Redis) -> None:
    store = TicketStore(redis)
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)
    for ticket_id, fields in {
        "T1": {"text": "路灯坏了", "district": "A2区", "received_at": at.isoformat(), "department": "roads"},
        "T2": {"department": "parks"},
    }.items():
        for scope in contract.SCOPES:  # each field by its owner
            mine = {k: v for k, v in fields.items() if contract.FIELDS[k].owner == scope}
            await store.apply(StoreWrite(ticket_id, f"e-{ticket_id}", fields=mine), scope=scope)
    one, two, missing = await store.get_many(["T1", "T2", "T9"], fields=("text", "received_at", "title"))
    assert one is not None and (one.text, one.received_at, one.title) == ("路灯坏了", at, None)
    assert one.department is None and one.district is None, "fields not asked for keep their defaults"
    assert two is None and missing is None, "a ticket with none of the fields reads as no ticket"
    [whole] = await store.get_many(["T1"])
    assert whole is not None and whole.department == "roads" and whole.district == "A2区"


async def test_redelivered_events_change_the_store_once(redis: Redis) -> None:
    worker, consumer = make_worker(redis)
    await add(redis, received(1))
    entries = await read(redis)
    await worker.process(consumer, entries)
    await worker.process(consumer, entries)  # as if the ack had been lost and the entry delivered again
    assert await redis.hget("hotline:dupes:test:n", "n") == b"1"
    assert len(await TicketStore(redis).history("T1")) == 1


async def test_poison_entries_go_to_the_dlq_with_reasons_and_the_rest_flows(redis: Redis) -> None:
    worker, consumer = make_worker(redis)
    bad_version = received(9).model_copy(update={"version": 2})
    await add(
        redis,
        received(1),
        bad_version,
        raw=[{DATA_FIELD: b"not json{"}, {b"n": b"5"}, {DATA_FIELD: b'{"event_id": "x"}'}],
    )
    result = await worker.process(consumer, await read(redis))
    assert len(result.done) == 1 and len(result.dead) == 4
    assert await redis.xlen(streams.CLASSIFIED) == 1
    assert await pending(redis) == 0
    dead = await redis.xrange(streams.dlq(streams.RECEIVED))
    reasons = {f[b"error"].decode() for _, f in dead}
    assert any("unsupported schema version 2" in r for r in reasons)
    assert any("no __data__" in r for r in reasons)
    assert any("ticket_id: Field required" in r for r in reasons)
    assert all(f[b"service"] == b"test" and f[b"original_id"] for _, f in dead)
    assert any(f.get(DATA_FIELD) == b"not json{" for _, f in dead), (
        "the original entry travels with its error"
    )


async def test_a_failing_event_is_retried_then_dead_lettered_without_holding_back_the_batch(
    redis: Redis,
) -> None:
    worker, consumer = make_worker(redis, max_deliveries=2, claim_idle_ms=100)
    boom = received(2).model_copy(update={"text": "boom"})
    await add(redis, received(1), boom, received(3))
    first = await worker.process(consumer, await read(redis))
    assert len(first.done) == 2 and len(first.retry) == 1
    assert await pending(redis) == 1
    await asyncio.sleep(0.15)
    await worker.claim_once(consumer)  # second delivery: fails again, reaches max_deliveries
    assert await pending(redis) == 0
    [(_, fields)] = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert fields[b"reason"] == b"handler_error" and b"cannot handle T2" in fields[b"error"]
    assert fields[b"deliveries"] == b"2"


async def test_the_claimer_takes_over_what_a_dead_consumer_left_pending(redis: Redis) -> None:
    worker, consumer = make_worker(redis, claim_idle_ms=100)
    await add(redis, *(received(i) for i in range(7)))
    assert len(await read(redis, consumer="crashed-pod")) == 7  # read, then the pod died
    await asyncio.sleep(0.15)
    await worker.claim_once(consumer)
    assert await pending(redis) == 0
    assert await redis.xlen(streams.CLASSIFIED) == 7


async def test_an_entry_that_kills_its_worker_is_cut_off_by_its_delivery_count(redis: Redis) -> None:
    worker, consumer = make_worker(redis, max_deliveries=2, claim_idle_ms=100)
    await add(redis, received(1))
    await read(redis, consumer="crashed-pod")
    for _ in range(2):  # two more deliveries that "crash" (claimed, never processed)
        await asyncio.sleep(0.15)
        await redis.xautoclaim(streams.RECEIVED, GROUP, "crashed-again", 100, "0-0")
    await asyncio.sleep(0.15)
    await worker.claim_once(consumer)
    [(_, fields)] = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert fields[b"reason"] == b"max_deliveries"
    assert await redis.xlen(streams.CLASSIFIED) == 0


async def test_stream_gauges(redis: Redis) -> None:
    worker, _ = make_worker(redis)
    await add(redis, *(received(i) for i in range(4)))
    await redis.xreadgroup(GROUP, "w1", {streams.RECEIVED: ">"}, count=1)
    await worker.observe_streams()
    m = worker.metrics
    assert m.lag.labels("test", streams.RECEIVED, GROUP)._value.get() == 3
    assert m.pending.labels("test", streams.RECEIVED, GROUP)._value.get() == 1
    assert m.length.labels("test", streams.RECEIVED)._value.get() == 4


async def test_stream_lag_without_xinfo_lag(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis 6.2 (the embedded one) reports no lag: the worker counts the unread entries itself."""
    worker, _ = make_worker(redis)
    await add(redis, *(received(i) for i in range(5)))
    await redis.xreadgroup(GROUP, "w1", {streams.RECEIVED: ">"}, count=2)
    groups = redis.xinfo_groups

    async def without_lag(stream: str) -> list[dict[str, object]]:
        return [{k: v for k, v in g.items() if k != "lag"} for g in await groups(stream)]

    monkeypatch.setattr(redis, "xinfo_groups", without_lag)
    await worker.observe_streams()
    assert worker.metrics.lag.labels("test", streams.RECEIVED, GROUP)._value.get() == 3


async def test_trimming_never_drops_what_a_group_has_not_finished(redis: Redis) -> None:
    worker, consumer = make_worker(redis, stream_retention_seconds=0)
    # Only the group under test (the recorder's would hold everything: it reads nothing here).
    await redis.xgroup_destroy(streams.RECEIVED, streams.RECORDER)
    await add(redis, *(received(i) for i in range(10)))
    entries = await read(redis)
    await worker.process(consumer, entries[:4])  # 4 done, 6 delivered and still pending
    await add(redis, *(received(i) for i in range(10, 15)))  # 5 not yet read
    minid = await worker.trim_stream(streams.RECEIVED)
    assert minid == entries[4][0].decode()
    remaining = [i for i, _ in await redis.xrange(streams.RECEIVED)]
    assert entries[4][0] in remaining and len(remaining) >= 11
    # Another group that has read nothing holds everything.
    await redis.xgroup_create(streams.RECEIVED, "laggard", id="0")
    await worker.trim_stream(streams.RECEIVED)
    assert await redis.xlen(streams.RECEIVED) == len(remaining)


async def test_dead_letters_can_be_listed_and_replayed(redis: Redis) -> None:
    from shared import dlq

    worker, consumer = make_worker(redis, max_deliveries=1)
    boom = received(2).model_copy(update={"text": "boom"})
    await add(redis, boom)
    await worker.process(consumer, await read(redis))
    [dead] = await dlq.list_dead(redis)
    assert (dead.stream, dead.reason, dead.ticket_id, dead.service) == (
        streams.RECEIVED,
        "handler_error",
        "T2",
        "test",
    )
    assert await dlq.replay(redis, streams.RECEIVED) == 1
    assert await dlq.list_dead(redis) == []
    [(_, fields)] = await read(redis)
    assert decode(fields, TicketReceived).text == "boom"  # the original payload, byte for byte


async def test_idle_consumers_with_nothing_pending_are_reaped(redis: Redis) -> None:
    worker, consumer = make_worker(redis, consumer_name="pod-b")
    await add(redis, received(1), received(2))
    await redis.xreadgroup(GROUP, "pod-old-idle", {streams.RECEIVED: ">"}, count=1)
    await redis.xack(streams.RECEIVED, GROUP, *(i for i, _ in await redis.xrange(streams.RECEIVED, count=1)))
    await redis.xreadgroup(GROUP, "pod-old-holding", {streams.RECEIVED: ">"}, count=1)
    await asyncio.sleep(0.05)
    assert await worker.reap_consumers(consumer, idle_ms=10) == ["pod-old-idle"]
    names = {c["name"] for c in await redis.xinfo_consumers(streams.RECEIVED, GROUP)}
    assert names == {b"pod-old-holding"}


async def test_a_worker_killer_takes_only_itself_to_the_dlq_not_its_batch_mates(redis: Redis) -> None:
    """An entry that kills the process kills every batch it is in: its batch mates must not share its fate."""

    async def killing(events: list[TicketReceived]) -> list[Effects]:
        if any(e.ticket_id == "T3" for e in events):
            raise SystemExit("the process died")  # a BaseException: nothing below it runs or commits
        return await handler(events)

    consumer = Consumer(streams.RECEIVED, GROUP, TicketReceived, killing)
    await add(redis, *(received(i) for i in range(6)))
    entries = await read(redis, consumer="crashed-pod")  # the batch killed its reader
    killer = entries[3][0]
    for _ in range(12):  # a fresh process each time, as after a restart
        await asyncio.sleep(0.15)
        worker = Worker(
            service="test",
            settings=CommonSettings(claim_idle_ms=100, max_deliveries=5),
            redis=redis,
            consumers=[consumer],
        )
        with contextlib.suppress(SystemExit):
            await worker.claim_once(consumer)
        if await pending(redis) == 0:
            break
    dead = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert [f[b"original_id"] for _, f in dead] == [killer]
    assert dead[0][1][b"reason"] == b"max_deliveries"
    assert await redis.xlen(streams.CLASSIFIED) == 5
    assert await pending(redis) == 0


async def test_a_write_failing_inside_the_commit_is_dead_lettered_not_lost(redis: Redis) -> None:
    """MULTI/EXEC applies the other commands, the XACK included, when one fails: that one needs a trace."""
    await redis.set("hotline:dupes:test:n", "not a hash")  # T2's write will hit a key of the wrong type

    async def writing(events: list[TicketReceived]) -> list[Effects]:
        key = lambda e: "hotline:dupes:test:n" if e.ticket_id == "T2" else "hotline:dupes:ok:n"  # noqa: E731
        return [
            Effects(writes=[StoreWrite(e.ticket_id, e.event_id, ops=[Increment(key(e), "n")])])
            for e in events
        ]

    consumer = Consumer(streams.RECEIVED, GROUP, TicketReceived, writing)
    worker = Worker(service="test", settings=CommonSettings(), redis=redis, consumers=[consumer])
    await add(redis, received(1), received(2), received(3))
    result = await worker.process(consumer, await read(redis))
    assert len(result.done) == 2 and len(result.dead) == 1
    assert await redis.hget("hotline:dupes:ok:n", "n") == b"2"
    assert await pending(redis) == 0
    [(_, fields)] = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert fields[b"reason"] == b"commit_error" and b"WRONGTYPE" in fields[b"error"]
    assert decode(fields, TicketReceived).ticket_id == "T2"


async def test_an_event_of_another_type_is_dead_lettered_even_when_it_would_validate(redis: Redis) -> None:
    """A TicketEscalated validates as a TicketReopened: on tickets.reopened it would reopen its ticket."""
    from shared.events import TicketEscalated, TicketReopened

    seen: list[TicketReopened] = []

    async def reopen(events: list[TicketReopened]) -> list[Effects]:
        seen.extend(events)
        return [Effects() for _ in events]

    consumer = Consumer(streams.REOPENED, streams.DISPATCH, TicketReopened, reopen)
    worker = Worker(service="test", settings=CommonSettings(), redis=redis, consumers=[consumer])
    wrong = TicketEscalated(
        event_id="x1", ticket_id="T1", occurred_at=T0, department="d", reason="late", overdue_since=T0
    )
    right = TicketReopened(event_id="r1", ticket_id="T2", occurred_at=T0, reason="not resolved")
    for event in (wrong, right):
        await redis.xadd(streams.REOPENED, {DATA_FIELD: pack(event)})
    reply = await redis.xreadgroup(streams.DISPATCH, "w1", {streams.REOPENED: ">"}, count=10)
    result = await worker.process(consumer, list(reply[0][1]))
    assert [e.ticket_id for e in seen] == ["T2"]
    assert len(result.done) == 1 and len(result.dead) == 1
    [(_, fields)] = await redis.xrange(streams.dlq(streams.REOPENED))
    assert fields[b"reason"] == b"invalid" and b"TicketEscalated" in fields[b"error"]


async def test_after_a_failure_each_event_sees_the_writes_of_the_events_before_it(redis: Redis) -> None:
    """Handlers thread a ticket's state through a batch (dispatch, evaluation): when one event fails and
    the rest are handled one at a time, a ticket's second event must still see what its first one wrote."""
    store = TicketStore(redis)

    async def counting(events: list[TicketReceived]) -> list[Effects]:
        seen: dict[str, int] = {}  # what this batch wrote so far, as dispatch's _Tickets keeps it
        out = []
        for e in events:
            if "boom" in e.text:
                raise RuntimeError("cannot handle it")
            if e.ticket_id not in seen:
                ticket = await store.get(e.ticket_id)
                seen[e.ticket_id] = int(ticket.confidence or 0) if ticket else 0
            seen[e.ticket_id] += 1
            out.append(
                Effects(
                    writes=[
                        StoreWrite(e.ticket_id, e.event_id, fields={"confidence": str(seen[e.ticket_id])})
                    ]
                )
            )
        return out

    consumer = Consumer(streams.RECEIVED, GROUP, TicketReceived, counting)
    worker = Worker(service="test", settings=CommonSettings(), redis=redis, consumers=[consumer])
    same = [received(1), received(2).model_copy(update={"ticket_id": "T1"})]  # two events of one ticket
    boom = received(3).model_copy(update={"text": "boom"})
    await add(redis, same[0], boom, same[1])
    result = await worker.process(consumer, await read(redis))
    assert len(result.done) == 2 and len(result.retry) == 1
    assert await redis.hget("hotline:ticket:T1", "confidence") == b"2"


async def test_an_entry_deleted_while_pending_leaves_a_dead_letter(redis: Redis) -> None:
    """Its data is gone (trimmed past the MAXLEN cap, XDEL), but its loss is recorded, not silent."""
    worker, consumer = make_worker(redis, claim_idle_ms=100)
    await add(redis, received(1), received(2))
    entries = await read(redis, consumer="crashed-pod")
    await redis.xdel(streams.RECEIVED, entries[0][0])
    await asyncio.sleep(0.15)
    await worker.claim_once(consumer)
    assert await pending(redis) == 0
    assert await redis.xlen(streams.CLASSIFIED) == 1
    [(_, fields)] = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert fields[b"reason"] == b"deleted" and fields[b"original_id"] == entries[0][0]


async def test_a_consumer_that_took_entries_since_it_was_listed_is_not_reaped(redis: Redis) -> None:
    """XINFO CONSUMERS, then DELCONSUMER: a consumer that claims entries in between must keep them,
    or they leave the group's PEL and nobody can claim them again."""
    worker, consumer = make_worker(redis, consumer_name="pod-b")
    await add(redis, received(1))
    await redis.xreadgroup(GROUP, "pod-a-claimer", {streams.RECEIVED: ">"}, count=1)
    await redis.xack(streams.RECEIVED, GROUP, *(i for i, _ in await redis.xrange(streams.RECEIVED)))
    await asyncio.sleep(0.05)
    listed = await redis.xinfo_consumers(streams.RECEIVED, GROUP)  # pod-a-claimer: idle, nothing pending
    await add(redis, received(2))
    await redis.xreadgroup(GROUP, "pod-a-claimer", {streams.RECEIVED: ">"}, count=1)  # it takes one now

    async def stale(*_: Any) -> Any:
        return listed

    redis_info = worker.redis.xinfo_consumers
    worker.redis.xinfo_consumers = stale  # type: ignore[method-assign]
    try:
        assert await worker.reap_consumers(consumer, idle_ms=10) == []
    finally:
        worker.redis.xinfo_consumers = redis_info  # type: ignore[method-assign]
    assert await pending(redis) == 1
