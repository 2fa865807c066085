"""Open311 reads over the record (PostgreSQL), for a ticket Redis does not hold: searched and listed from the
record without bringing it back, and brought back into Redis, as it was, when asked for by id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from shared.db.urls import asyncpg_dsn
from shared.store import TicketStore, keys
from tests.integration.intake_support import intake_client

pytestmark = pytest.mark.redis
BASE = "/open311/v2"
RECEIVED = datetime(2025, 3, 14, 1, 30, tzinfo=UTC)  # long past Redis's 90 days of update index


@pytest.fixture
async def recorded(database_url: str) -> str:
    """A ticket of March 2025 as the recorder left it: its row and its history, nothing in Redis."""
    history = [
        {"at": RECEIVED.isoformat(), "event": "received", "status": "received", "summary": "via open311"},
        {
            "at": (RECEIVED + timedelta(minutes=3)).isoformat(),
            "event": "dispatched",
            "status": "dispatched",
            "department": "water_utility",
            "summary": "to water_utility",
        },
        {
            "at": (RECEIVED + timedelta(hours=5)).isoformat(),
            "event": "resolved",
            "status": "resolved",
            "department": "water_utility",
            "summary": "resolved: main repaired",
        },
    ]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for table in ("tickets", "ticket_history"):
            await conn.execute("SELECT hotline_ensure_partitions($1, $2)", table, date(2025, 3, 1))
        await conn.execute("TRUNCATE tickets, ticket_history")
        await conn.execute(
            "INSERT INTO tickets (ticket_id, received_at, rev, status, channel, text, service_code, "
            "category, department, lat, lon, needs_review, updated_at, resolved_at, extra) "
            "VALUES ('TOLD1', $1, 7, 'resolved', 'open311', 'Burst main on Chang''an Avenue', 'utilities', "
            "'utilities', 'water_utility', 39.91, 116.4, false, $2, $2, $3)",
            RECEIVED,
            RECEIVED + timedelta(hours=5),
            json.dumps({"eval_survey_status": "answered"}),
        )
        await conn.executemany(
            "INSERT INTO ticket_history (ticket_id, position, at, status, entry) "
            "VALUES ('TOLD1', $1, $2, $3, $4)",
            [(i, datetime.fromisoformat(e["at"]), e["status"], json.dumps(e)) for i, e in enumerate(history)],
        )
    finally:
        await conn.close()
    return database_url


@pytest.fixture
async def open311(redis: Redis, redis_url: str, recorded: str) -> AsyncIterator[httpx.AsyncClient]:
    await redis.set(keys.evicted, 1)  # TOLD1 was recorded and left Redis
    async with intake_client(redis_url, DATABASE_URL=recorded, timezone="Asia/Shanghai") as client:
        yield client


async def test_a_search_of_last_year_reads_the_record_and_leaves_redis_alone(
    open311: httpx.AsyncClient, redis: Redis
) -> None:
    window = {"start_date": "2025-03-01T00:00:00+08:00", "end_date": "2025-04-01T00:00:00+08:00"}
    found = (await open311.get(f"{BASE}/requests.json", params={**window, "status": "closed"})).json()
    assert [(r["service_request_id"], r["status"], r["service_code"]) for r in found] == [
        ("TOLD1", "closed", "utilities")
    ]
    assert found[0]["requested_datetime"] == "2025-03-14T09:30:00+08:00"
    assert (await open311.get(f"{BASE}/requests.json", params={**window, "status": "open"})).json() == []
    coded = {**window, "service_code": "environment"}
    assert (await open311.get(f"{BASE}/requests.json", params=coded)).json() == []
    updates = (await open311.get(f"{BASE}/servicerequestupdates.json", params=window)).json()
    assert [(u["update_id"], u["status"]) for u in updates] == [
        ("TOLD1-0", "open"),
        ("TOLD1-1", "open"),
        ("TOLD1-2", "fixed"),
    ]
    assert not await redis.exists(keys.ticket("TOLD1"))


async def test_asked_for_by_id_it_comes_back_into_redis_as_recorded(
    open311: httpx.AsyncClient, redis: Redis
) -> None:
    one = (await open311.get(f"{BASE}/requests/TOLD1.json")).json()[0]
    assert (one["status"], one["agency_responsible"] is not None) == ("closed", True)
    ticket = await TicketStore(redis, record=None).get_or_raise("TOLD1")
    assert (ticket.status, ticket.department, ticket.lat, ticket.received_at) == (
        "resolved",
        "water_utility",
        39.91,
        RECEIVED,
    )
    raw = await redis.hgetall(keys.ticket("TOLD1"))
    assert raw[b"rev"] == b"7" and raw[b"needs_review"] == b"0" and raw[b"eval_survey_status"] == b"answered"
    history = await TicketStore(redis, record=None).history("TOLD1")
    assert [e["event"] for e in history] == ["received", "dispatched", "resolved"]
    assert await redis.zscore(keys.by_created, "TOLD1") == RECEIVED.timestamp()
    assert (await open311.get(f"{BASE}/requests/TNOPE.json")).status_code == 404


async def test_the_record_out_of_reach_is_a_503_not_a_500(redis: Redis, redis_url: str) -> None:
    await redis.set(keys.evicted, 1)
    async with intake_client(redis_url, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none") as client:
        assert (await client.get(f"{BASE}/requests/TOLD1.json")).status_code == 503
        assert (await client.get(f"{BASE}/requests.json")).status_code == 503


async def test_while_no_ticket_ever_left_redis_a_miss_does_not_ask_the_record(
    redis: Redis, redis_url: str
) -> None:
    async with intake_client(redis_url, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none") as client:
        assert (await client.get(f"{BASE}/requests/TOLD1.json")).status_code == 404
