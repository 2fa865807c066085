"""The console's search over the system of record, on a real PostgreSQL: words in any script through
the word index (its keys: characters and ASCII bigrams, migration 0009) give exactly what ILIKE alone
gives, filters and the date window hold, a single word may be a ticket's id, and the search page reads the
record for tickets Redis no longer has."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from redis.asyncio import Redis

from services.console import history as history_module
from services.console.history import History
from services.console.search import Query
from shared import contract
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from shared.effects import StoreWrite
from shared.rehydration import RecordReader
from shared.store import TicketStore, keys
from tests.integration.console_support import console_client, sign_in
from tools.embedded import free_port

pytestmark = pytest.mark.redis
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
# (id, days ago, status, district, category, title, text)
TICKETS = [
    ("S1", 1, "resolved", "donghu", "transport", None, "湖滨路的路灯不亮了，晚上很黑"),
    ("S2", 2, "accepted", "xishan", "transport", "路灯", "松林路一排灯坏了"),
    ("S3", 3, "resolved", "donghu", "environment", None, "工地夜间施工噪音扰民"),
    ("S4", 40, "resolved", "donghu", "transport", None, "路灯杆倒了"),
    ("S5", 1, "dispatched", "nangang", "utilities", "Water", "No WATER since Monday in building 3"),
    ("S6", 1, "resolved", "beiyuan", "utilities", None, "水管爆了，到处是水"),
    ("S7", 1, "resolved", "beiyuan", "utilities", None, "100% 的住户 停水"),
]


@pytest.fixture
async def record(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("TRUNCATE tickets")
        for month in (10, 11, 12):
            await conn.execute("SELECT hotline_ensure_partitions('tickets', $1)", date(2026, month, 1))
        await conn.executemany(
            "INSERT INTO tickets (ticket_id, received_at, rev, status, district, category, title, text)"
            " VALUES ($1, $2, 1, $3, $4, $5, $6, $7)",
            [(t, NOW - timedelta(days=d), s, di, c, ti, te) for t, d, s, di, c, ti, te in TICKETS],
        )
        await conn.execute("SELECT hotline_index_words(1000)")  # what the recorder's pass does
        yield conn
    finally:
        await conn.close()


async def found(history: History, days: int = 30, **params: str) -> list[str]:
    result = await history.search(Query.of(params, UTC_ZONE), NOW - timedelta(days=days), NOW)
    return [t.ticket_id for t in result.tickets]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "路灯"}, ["S1", "S2"]),  # in the text, or in the title; newest first; S4 is out of the window
        ({"q": "路灯 不亮"}, ["S1"]),
        ({"q": "路灯", "district": "xishan"}, ["S2"]),
        ({"q": "路灯", "status": "resolved"}, ["S1"]),
        ({"q": "water monday"}, ["S5"]),  # case-insensitive
        ({"q": "水"}, ["S6", "S7"]),  # one character: a key of its own
        ({"q": "100%"}, ["S7"]),  # a wildcard is a character like any other
        ({"q": "10_"}, []),
        ({"q": "S3"}, ["S3"]),  # a ticket's id
        ({"category": "utilities", "district": "beiyuan"}, ["S6", "S7"]),
    ],
)
async def test_the_record_is_searched_by_words_filters_and_id(
    record: asyncpg.Connection, database_url: str, params: dict[str, str], expected: list[str]
) -> None:
    history = History(RecordReader(database_url))
    try:
        assert sorted(await found(history, **params)) == sorted(expected)
    finally:
        await history.record.close()


async def test_a_page_filled_by_the_newest_tickets_is_the_answer(
    record: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "LIMIT", 1)  # a page of one: the newest ticket with the word
    monkeypatch.setattr(history_module, "RECENT", 4)  # the four of a day ago
    history = History(RecordReader(database_url))
    try:
        assert await found(history, q="路灯") == ["S1"]  # among them
        assert await found(history, q="噪音") == ["S3"]  # not among them: through the index
    finally:
        await history.record.close()


async def test_a_word_is_looked_up_in_the_word_index(record: asyncpg.Connection) -> None:
    await record.execute("SET enable_seqscan = off")  # seven rows: force the planner to show its index
    rows = await record.fetch(
        "EXPLAIN SELECT ticket_id FROM ticket_words WHERE words @> hotline_word_keys('路灯')"
    )
    text = "\n".join(r[0] for r in rows)
    assert "Bitmap Index Scan on ticket_words" in text, text
    # Each character; bigrams within runs of ASCII letters and digits, a run of anything else one space.
    keys = await record.fetchval("SELECT hotline_word_keys('AB路灯 No.5')")
    assert sorted(keys) == sorted(
        [" ", ".", "5", "a", "b", "n", "o", "路", "灯", "ab", "b ", " n", "no", "o ", " 5"]
    )
    assert await record.fetchval("SELECT hotline_word_keys('x')") == ["x"]


async def test_the_words_follow_the_text_and_only_the_text(
    record: asyncpg.Connection, database_url: str
) -> None:
    version = "SELECT xmin::text FROM ticket_words WHERE ticket_id = 'S3'"
    before = await record.fetchval(version)
    await record.execute("UPDATE tickets SET status = 'dispatched', rev = rev + 1 WHERE ticket_id = 'S3'")
    assert before is not None and await record.fetchval(version) == before  # a change of status: no work
    assert await record.fetchval("SELECT count(*) FROM ticket_words_pending") == 0
    await record.execute("UPDATE tickets SET text = '垃圾桶满了没人清', rev = rev + 1 WHERE ticket_id = 'S3'")
    # Found while pending (the index still holds the old words), and once indexed.
    assert await record.fetchval("SELECT array_agg(ticket_id) FROM ticket_words_pending") == ["S3"]
    for phase in ("pending", "indexed"):
        if phase == "indexed":
            assert await record.fetchval("SELECT hotline_index_words(10)") == 1
        history = History(RecordReader(database_url))
        try:
            assert await found(history, q="垃圾桶") == ["S3"]
            assert await found(history, q="噪音") == []
        finally:
            await history.record.close()


async def test_a_ticket_not_indexed_yet_is_found_by_its_words(
    record: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "RECENT", 1)  # not among the newest: only the index path can find it
    await record.execute(
        "INSERT INTO tickets (ticket_id, received_at, rev, status, district, text)"
        " VALUES ('P1', $1, 1, 'received', 'donghu', '井盖丢了，路口很危险')",
        NOW - timedelta(days=5),
    )
    assert await record.fetchval("SELECT count(*) FROM ticket_words WHERE ticket_id = 'P1'") == 0
    history = History(RecordReader(database_url))
    try:
        assert await found(history, q="井盖 路口") == ["P1"]
        assert await found(history, q="井盖 噪音") == []  # a candidate, still checked by ILIKE
        assert sorted(await found(history, q="路")) == ["P1", "S1", "S2"]  # one character
    finally:
        await history.record.close()


async def test_tickets_recorded_before_the_migration_get_their_words(postgres_server_url: str) -> None:
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{name}"))
    try:
        migrate.upgrade(url, "0004")
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("SELECT hotline_ensure_partitions('tickets', '2026-11-01')")
            await conn.execute(
                "INSERT INTO tickets (ticket_id, received_at, rev, status, text)"
                " VALUES ('OLD1', '2026-11-20T08:00:00Z', 1, 'resolved', '路灯不亮')"
            )
            migrate.upgrade(url)
            assert await conn.fetchval(
                "SELECT words @> hotline_word_keys('路灯不亮') FROM ticket_words WHERE ticket_id = 'OLD1'"
            )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_search_page_finds_a_ticket_only_the_record_holds(
    record: asyncpg.Connection, redis: Redis, redis_url: str, database_url: str
) -> None:
    async with console_client(redis_url, DATABASE_URL=database_url) as console:
        await sign_in(console, "operator")
        page = await console.get("/search", params={"q": "噪音", "district": "donghu"})
    assert page.status_code == 200 and 'href="/tickets/S3"' in page.text
    assert not await redis.exists("hotline:ticket:S3")  # read, not brought back


async def test_an_id_redis_holds_is_found_whether_or_not_the_record_answers(
    record: asyncpg.Connection, redis: Redis, redis_url: str, database_url: str
) -> None:
    store = TicketStore(redis, record=None)
    now = datetime.now(UTC)
    fields = {"status": "received", "text": "刚受理的工单", "received_at": now.isoformat()}
    await store.apply(StoreWrite("NEW1", "r", fields=fields), scope=contract.INTAKE)
    await redis.zadd(keys.by_created, {"NEW1": now.timestamp()})
    away = f"postgresql://hotline@127.0.0.1:{free_port()}/hotline"
    for url in (database_url, away):  # not recorded yet; the record out of reach
        async with console_client(redis_url, DATABASE_URL=url) as console:
            await sign_in(console, "operator")
            page = await console.get("/search", params={"q": "NEW1"})
        assert page.status_code == 200 and 'href="/tickets/NEW1"' in page.text, url
    async with console_client(redis_url, DATABASE_URL=away) as console:
        await sign_in(console, "operator")
        page = await console.get("/search", params={"q": "刚受理"})  # the Redis fallback
    assert page.status_code == 200 and 'href="/tickets/NEW1"' in page.text
