"""The console's word index filled off the recorder's writes (migration 0007, services/recorder/words.py),
on a real Redis and PostgreSQL: a recorded ticket waits in `ticket_words_pending` until the background pass
indexes it, and the pass holds off while the recorder is behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.recorder.app import RecorderWorker
from services.recorder.words import WordIndex
from shared.effects import StoreWrite
from shared.store import TicketStore, keys

pytestmark = pytest.mark.redis


def pending_gauge(words: WordIndex) -> float | None:
    return words.registry.get_sample_value("hotline_search_index_pending_tickets")


def index_of(
    recorder: RecorderWorker, hold_above: int, batch: int = 2, clock: Callable[[], float] = time.monotonic
) -> WordIndex:
    return WordIndex(
        recorder.redis,
        recorder.database,
        interval=1.0,
        batch=batch,
        hold_above=hold_above,
        max_hold=60.0,
        registry=CollectorRegistry(),
        clock=clock,
    )


async def receive(redis: Redis, count: int) -> None:
    store = TicketStore(redis)
    at = datetime(2026, 11, 20, 8, tzinfo=UTC).isoformat()
    for n in range(count):
        fields = {"status": "received", "received_at": at, "text": f"路灯不亮 {n}"}
        await store.apply(StoreWrite(f"W{n}", f"e{n}", fields=fields), scope="intake")


async def test_a_recorded_ticket_is_pending_until_the_pass_indexes_it(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    await receive(redis, 5)
    assert await recorder.record_tickets_once() == 5
    assert await pg.fetchval("SELECT count(*) FROM ticket_words_pending") == 5
    assert await pg.fetchval("SELECT count(*) FROM ticket_words") == 0  # not in the record's transaction

    words = index_of(recorder, hold_above=1000, batch=2)
    result = await words.once(asyncio.Event())
    assert (result.indexed, result.held) == (5, False)  # batches of 2 until none is left
    assert await pg.fetchval("SELECT count(*) FROM ticket_words_pending") == 0
    rows = await pg.fetch("SELECT ticket_id, words FROM ticket_words ORDER BY ticket_id")
    assert [r["ticket_id"] for r in rows] == [f"W{n}" for n in range(5)]
    assert all({"路", "灯"} <= set(r["words"]) for r in rows)
    assert pending_gauge(words) == 0

    # A later change of status lists nothing; a change of text lists the ticket again.
    await TicketStore(redis).apply(StoreWrite("W1", "s", fields={"status": "dispatched"}), scope="dispatch")
    await recorder.record_tickets_once()
    assert await pg.fetchval("SELECT count(*) FROM ticket_words_pending") == 0


async def test_the_pass_holds_off_while_the_recorder_is_behind(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    await receive(redis, 3)
    await recorder.record_tickets_once()
    await redis.zadd(keys.unrecorded, {f"later{n}": 0 for n in range(3)})  # three tickets left to record
    words = index_of(recorder, hold_above=2)
    result = await words.once(asyncio.Event())
    assert (result.indexed, result.held) == (0, True)
    assert await pg.fetchval("SELECT count(*) FROM ticket_words_pending") == 3
    assert pending_gauge(words) == 3  # the gauge says what waits

    await redis.zrem(keys.unrecorded, "later0")  # caught up to the threshold
    result = await words.once(asyncio.Event())
    assert (result.indexed, result.held) == (3, False)
    assert await pg.fetchval("SELECT count(*) FROM ticket_words") == 3


async def test_held_off_longer_than_its_limit_the_pass_indexes_a_batch_each_time(
    redis: Redis, recorder: RecorderWorker, pg: asyncpg.Connection
) -> None:
    await receive(redis, 5)
    await recorder.record_tickets_once()
    await redis.zadd(keys.unrecorded, {f"later{n}": 0 for n in range(3)})  # behind for good
    now = [0.0]
    words = index_of(recorder, hold_above=2, batch=2, clock=lambda: now[0])
    assert (await words.once(asyncio.Event())).indexed == 0  # the hold starts
    now[0] = 59.0
    assert (await words.once(asyncio.Event())).indexed == 0
    now[0] = 60.0
    result = await words.once(asyncio.Event())
    assert (result.indexed, result.held) == (2, True)  # one batch, still held
    now[0] = 61.0
    assert (await words.once(asyncio.Event())).indexed == 2
    assert await pg.fetchval("SELECT count(*) FROM ticket_words_pending") == 1

    await redis.delete(keys.unrecorded)  # caught up: the hold ends, the rest goes
    assert (await words.once(asyncio.Event())).indexed == 1
    await redis.zadd(keys.unrecorded, {f"later{n}": 0 for n in range(3)})
    now[0] = 100.0
    assert (await words.once(asyncio.Event())).indexed == 0  # a new hold starts from scratch
