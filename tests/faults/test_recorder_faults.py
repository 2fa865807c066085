"""Faults of the system of record, against real processes, a real Redis and a real PostgreSQL started
here: the recorder killed with SIGKILL under load, PostgreSQL stopped and started again. In every case
each event is in `ticket_events` exactly once and `tickets` equals the Redis projection."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.intake.app import IntakeSettings
from shared import streams
from shared.bus import as_str, redis_client
from shared.codec import DATA_FIELD
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from shared.store import keys
from tests.support import ticket_matches_row, wait_for
from tools.demo import make_calls, post_calls, wait_dispatched
from tools.embedded import EmbeddedRedis
from tools.embedded_postgres import EmbeddedPostgres
from tools.runner import Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
SECRET = IntakeSettings().webhook_secrets[0]
FAST_CLAIMS = {"HOTLINE_CLAIM_IDLE_MS": "2000", "HOTLINE_GRACEFUL_TIMEOUT": "10"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.close()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL this test may stop and start again (same port, same data)."""
    server = EmbeddedPostgres().start()
    migrate.upgrade(server.url)
    yield server
    server.close()


@pytest.fixture
async def stack(
    own_redis: EmbeddedRedis, own_postgres: EmbeddedPostgres, tmp_path: Path
) -> AsyncIterator[Stack]:
    running = Stack(
        redis_url=own_redis.url,
        database_url=own_postgres.url,
        log_dir=tmp_path / "logs",
        extra_env=FAST_CLAIMS,
    )
    await asyncio.to_thread(running.start)
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


async def published_event_ids(redis_url: str) -> set[str]:
    """Every event id on the ticket streams (none is trimmed within a test: retention is a day)."""
    from pydantic_core import from_json

    from shared.codec import event_json
    from shared.events import STREAM_EVENTS

    redis = redis_client(redis_url)
    try:
        ids = set()
        for stream in streams.TICKET_STREAMS:
            for _, fields in await redis.xrange(stream):
                if DATA_FIELD in fields:
                    ids.add(from_json(event_json(fields, STREAM_EVENTS[stream]))["event_id"])
        return ids
    finally:
        await redis.aclose()


async def differences(redis_url: str, database_url: str) -> list[str]:
    """What the record lacks or has twice, and each ticket whose row differs from its hash in Redis."""
    redis = redis_client(redis_url)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        problems = []
        if unrecorded := await redis.zcard(keys.unrecorded):
            problems.append(f"{unrecorded} tickets not yet recorded")
        counts = {
            r["event_id"]: r["n"]
            for r in await conn.fetch("SELECT event_id, count(*) AS n FROM ticket_events GROUP BY event_id")
        }
        twice = [e for e, n in counts.items() if n > 1]
        missing = await published_event_ids(redis_url) - set(counts)
        if twice or missing:
            problems.append(f"{len(missing)} events not recorded, {len(twice)} recorded twice")
        rows = {r["ticket_id"]: r for r in await conn.fetch("SELECT * FROM tickets")}
        names = [as_str(k).split(":") async for k in redis.scan_iter(match=keys.ticket("*"), count=1000)]
        tickets = {parts[2] for parts in names if len(parts) == 3}  # not the :applied and :history keys
        for ticket_id in sorted(tickets):
            fields = await redis.hgetall(keys.ticket(ticket_id))
            if ticket_id not in rows:
                problems.append(f"{ticket_id} not in tickets")
            elif diff := ticket_matches_row(fields, rows[ticket_id]):
                problems.append(f"{ticket_id}: {diff[:3]}")
        return problems
    finally:
        await conn.close()
        await redis.aclose()


async def assert_recorded_exactly(stack: Stack, tickets: dict[str, str]) -> None:
    assert stack.redis_url is not None and stack.database_url is not None
    outcome = await wait_dispatched(stack.redis_url, list(tickets.values()), wait_seconds=120)
    assert outcome.missing == []
    last: list[str] = []

    async def same() -> bool:
        nonlocal last
        last = await differences(stack.redis_url or "", stack.database_url or "")
        return not last

    try:
        await wait_for(same, "the record to equal the Redis projection", within=120)
    except AssertionError:
        raise AssertionError(f"{len(last)} differences, e.g. {last[:5]}") from None


async def test_recorder_killed_with_sigkill_under_load(stack: Stack) -> None:
    calls = make_calls(600, seed=21)
    posting = asyncio.create_task(post_calls(stack.url_of("intake"), SECRET, calls, rate=200))
    for _ in range(2):
        await asyncio.sleep(1.0)
        assert stack.stop_service("recorder", sig=signal.SIGKILL) == -signal.SIGKILL
        await asyncio.sleep(0.5)
        stack.start_service("recorder")
    tickets = await posting
    assert len(tickets) == 600
    await assert_recorded_exactly(stack, tickets)


async def test_postgres_stopped_then_started_the_loop_goes_on_and_the_recorder_catches_up(
    stack: Stack, own_postgres: EmbeddedPostgres
) -> None:
    calls = make_calls(600, seed=22)
    posting = asyncio.create_task(post_calls(stack.url_of("intake"), SECRET, calls, rate=100))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_postgres.stop)
    # While the database is down, intake answers and tickets are still dispatched.
    assert stack.redis_url is not None
    redis = redis_client(stack.redis_url)
    try:
        before = await redis.xlen(streams.DISPATCHED)
        await asyncio.sleep(8.0)
        assert await redis.xlen(streams.DISPATCHED) > before + 100
        assert await redis.zcard(keys.unrecorded) > 0  # and the recorder lags
    finally:
        await redis.aclose()
    await asyncio.to_thread(own_postgres.start)
    tickets = await posting
    assert len(tickets) == 600
    await assert_recorded_exactly(stack, tickets)
