"""Reading back tickets that left Redis, on a real Redis and a real PostgreSQL: one pool per process for
the reads that need the record, and no read at all where no ticket can have left Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.recorder.database import Database
from services.recorder.retention import Retention, guard_skipped_reads
from shared.db.urls import asyncpg_dsn
from shared.rehydration import RecordReader, reader_for
from shared.store import TicketStore, keys

pytestmark = pytest.mark.redis
RECEIVED = datetime(2025, 3, 14, 1, 30, tzinfo=UTC)
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(asyncpg_dsn(database_url))
    await c.execute("SELECT hotline_ensure_partitions('tickets', $1)", date(2025, 3, 1))
    await c.execute("TRUNCATE tickets, ticket_history")
    await c.executemany(
        "INSERT INTO tickets (ticket_id, received_at, rev, status, department) "
        "VALUES ($1, $2, 3, 'resolved', 'water_utility')",
        [(f"TOLD{n}", RECEIVED) for n in range(5)],
    )
    yield c
    await c.close()


async def _opened_since(conn: asyncpg.Connection, since: datetime) -> list[datetime]:
    """When each other session to the test's database still open was opened, if after `since`."""
    rows = await conn.fetch(
        "SELECT backend_start FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_start > $1",
        since,
    )
    return [r["backend_start"] for r in rows]


async def test_reads_of_the_record_share_one_pool_and_bring_each_ticket_back(
    redis: Redis, database_url: str, conn: asyncpg.Connection
) -> None:
    await redis.set(keys.evicted, 5)
    reader = reader_for(database_url)
    assert reader is reader_for(database_url)  # every store of the process reads through it
    before = await conn.fetchval("SELECT clock_timestamp()")
    for n in range(5):  # five batches that each miss a ticket: a worker's reads after evictions
        found = await TicketStore(redis, reader).get_many([f"TOLD{n}", "TNEW"], fields=("department",))
        assert [t.department if t else None for t in found] == ["water_utility", None]
    # One connection did the five reads and stays open for the next (one per read closes each).
    assert len(await _opened_since(conn, before)) == 1
    assert await redis.hget(keys.ticket("TOLD4"), "rev") == b"3"  # back in Redis, revision kept


async def test_a_ticket_in_redis_without_the_fields_read_does_not_ask_the_record(redis: Redis) -> None:
    # A strict reader of a database out of reach raises if asked: what is not asked answers.
    store = TicketStore(redis, RecordReader(UNREACHABLE, strict=True))
    await redis.hset(keys.ticket("TNEW"), mapping={"status": "received", "rev": "1"})
    assert await store.get_many(["TNEW"], fields=("department", "media_url")) == [None]
    # Nothing ever left Redis: a ticket it does not hold was never recorded-then-removed.
    assert await store.get("TGONE") is None
    await redis.set(keys.evicted, 1)
    assert await store.get_many(["TNEW"], fields=("department", "media_url")) == [None]
    with pytest.raises(OSError):
        await store.get("TGONE")


async def test_a_record_holding_tickets_redis_lacks_without_an_eviction_turns_the_reads_back_on(
    redis: Redis, database_url: str, conn: asyncpg.Connection
) -> None:
    database = Database(database_url)
    retention = Retention(redis, database, timedelta(days=30), 60, CollectorRegistry())
    try:
        for n in range(5):  # Redis holds every recorded ticket: the reads stay off
            await redis.hset(keys.ticket(f"TOLD{n}"), mapping={"status": "resolved", "rev": "3"})
        assert not await guard_skipped_reads(redis, retention.newest_recorded)
        assert not await redis.exists(keys.evicted)
        await redis.delete(keys.ticket("TOLD2"))  # Redis lost it (a restore from an older backup)
        assert await guard_skipped_reads(redis, retention.newest_recorded)
        assert await redis.get(keys.evicted) == b"1"
        assert (
            await TicketStore(redis, reader_for(database_url)).get_or_raise("TOLD2")
        ).department == "water_utility"
    finally:
        await database.close()
