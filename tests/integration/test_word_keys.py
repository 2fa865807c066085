"""The word index's keys (migration 0009: characters, and bigrams within ASCII runs) only narrow the
candidates: on a real PostgreSQL, the record's search answers exactly what ILIKE alone answers, for random
words of one to four characters in Chinese, English and mixed, whether a ticket is indexed or pending,
after its text changes, and a page at a time; and the migration converts the index both ways."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from alembic import command

from services.console import history as history_module
from services.console.history import WORDS, History, _like
from services.console.search import Query
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from shared.rehydration import RecordReader

pytestmark = pytest.mark.redis
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
# Few characters and words, so that words of two characters recur and their characters meet apart too.
HANZI = "路灯不亮井盖丢了噪音扰民停水漏地铁站口小区的"
ENGLISH = ["Water", "leak", "street", "light", "noise", "at", "night", "no.5", "x-ray", "Main St"]


def text_of(rng: random.Random) -> str:
    parts = [
        "".join(rng.choices(HANZI, k=rng.randint(3, 12))) if rng.random() < 0.6 else rng.choice(ENGLISH)
        for _ in range(rng.randint(1, 5))
    ]
    return rng.choice(["", " ", "，", "！"]).join(parts)


def words_of(rng: random.Random, texts: list[str], n: int) -> list[str]:
    """Substrings of the texts (in any case), pairs of characters that may never meet, and absent words."""
    out = []
    for _ in range(n):
        text = rng.choice(texts).replace(" ", "")
        start, size = rng.randrange(len(text)), rng.randint(1, 4)
        out.append(text[start : start + size].upper() if rng.random() < 0.3 else text[start : start + size])
    out += ["".join(rng.choices(HANZI, k=2)) for _ in range(n // 2)]
    return [*out, "abc", "雪", "路灯路灯"]


@pytest.fixture
async def record(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("TRUNCATE tickets, ticket_words, ticket_words_pending")
        for month in (11, 12):
            await conn.execute("SELECT hotline_ensure_partitions('tickets', $1)", date(2026, month, 1))
        yield conn
    finally:
        await conn.close()


async def fill(conn: asyncpg.Connection, texts: list[str]) -> None:
    """Ticket i received i minutes ago; every third one not indexed yet (pending), the rest indexed."""
    await conn.executemany(
        "INSERT INTO tickets (ticket_id, received_at, rev, status, title, text)"
        " VALUES ($1, $2, 1, 'received', $3, $4)",
        [
            (f"K{i}", NOW - timedelta(minutes=i), "Title" if i % 7 == 6 else None, text)
            for i, text in enumerate(texts)
        ],
    )
    await conn.execute("SELECT hotline_index_words(100000)")
    await conn.execute(
        "WITH later AS (DELETE FROM ticket_words WHERE substr(ticket_id, 2)::int % 3 = 2"
        " RETURNING ticket_id, received_at) INSERT INTO ticket_words_pending SELECT * FROM later"
    )


async def by_ilike(conn: asyncpg.Connection, words: list[str], limit: int) -> list[str]:
    likes = " AND ".join(f"({WORDS}) ILIKE ${n}" for n in range(1, len(words) + 1))
    rows = await conn.fetch(
        f"SELECT ticket_id FROM tickets WHERE {likes} ORDER BY received_at DESC LIMIT {limit}",
        *[_like(w) for w in words],
    )
    return [r["ticket_id"] for r in rows]


async def by_search(history: History, words: list[str]) -> list[str]:
    query = Query.of({"q": " ".join(words)}, ZoneInfo("UTC"))
    found = await history.search(query, NOW - timedelta(days=30), NOW + timedelta(seconds=1))
    return [t.ticket_id for t in found.tickets]


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_words_find_exactly_what_ilike_finds(
    record: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(history_module, "RECENT", 5)  # the index path answers nearly every word
    rng = random.Random(seed)
    texts = [text_of(rng) for _ in range(300)]
    await fill(record, texts)
    words = words_of(rng, texts, 60)
    # One word at a time, and pairs (every word must be there).
    asked = [[w] for w in words if w.strip()] + [rng.sample(words, 2) for _ in range(20)]
    history = History(RecordReader(database_url))
    try:
        checked = 0
        for query in asked:
            query = [w for w in query if w.strip()]
            if not query or " " in "".join(query):
                continue
            assert await by_search(history, query) == await by_ilike(record, query, 100), query
            checked += 1
        assert checked >= 80
    finally:
        await history.record.close()


async def test_characters_apart_are_candidates_only(record: asyncpg.Connection, database_url: str) -> None:
    """Both characters of 路灯 in a text that does not hold 路灯: a candidate, not an answer."""
    await fill(record, ["路口的灯坏了", "路灯坏了", "Streetlight", "street light"])
    history = History(RecordReader(database_url))
    try:
        assert await by_search(history, ["路灯"]) == ["K1"]
        assert await by_search(history, ["streetlight"]) == ["K2"]
        assert await by_search(history, ["tl"]) == ["K2"]
        assert await by_search(history, ["灯"]) == ["K0", "K1"]
    finally:
        await history.record.close()


async def test_a_changed_text_is_found_by_its_new_words_only(
    record: asyncpg.Connection, database_url: str
) -> None:
    await fill(record, ["路灯不亮 broken lamp", "小区停水"])
    history = History(RecordReader(database_url))
    try:
        await record.execute(
            "UPDATE tickets SET text = '灯光太亮 bright light', rev = 2 WHERE ticket_id = 'K0'"
        )
        for phase in ("pending", "indexed"):
            if phase == "indexed":
                assert await record.fetchval("SELECT hotline_index_words(10)") == 1
            assert await by_search(history, ["太亮"]) == ["K0"], phase
            assert await by_search(history, ["BRIGHT"]) == ["K0"], phase
            assert await by_search(history, ["路灯"]) == [], phase  # 灯 is still in the text
            assert await by_search(history, ["lamp"]) == [], phase
            assert await by_search(history, ["亮"]) == ["K0"], phase
    finally:
        await history.record.close()


async def test_a_page_is_the_newest_matches_through_the_index(
    record: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "LIMIT", 3)
    monkeypatch.setattr(history_module, "RECENT", 2)  # fewer than a page: the index path decides
    texts = ["路灯不亮" if i % 2 else "噪音扰民" for i in range(20)]
    await fill(record, texts)
    history = History(RecordReader(database_url))
    try:
        assert await by_search(history, ["路灯"]) == ["K1", "K3", "K5"]
        assert await by_search(history, ["扰民"]) == ["K0", "K2", "K4"]
        assert await by_search(history, ["路灯", "扰民"]) == []
    finally:
        await history.record.close()


async def test_the_migration_converts_the_index_and_back(postgres_server_url: str) -> None:
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{name}"))
    has = "SELECT words @> {0}('路灯') FROM ticket_words WHERE ticket_id = 'K0'"
    pending = "SELECT array_agg(ticket_id) FROM ticket_words_pending"
    try:
        migrate.upgrade(url, "0008")
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("SELECT hotline_ensure_partitions('tickets', '2026-12-01')")
            await fill(conn, ["路灯不亮", "噪音扰民", "停水"])  # K2 left pending
            assert await conn.fetchval(has.format("hotline_bigrams"))
            migrate.upgrade(url)
            assert await conn.fetchval(has.format("hotline_word_keys"))
            assert not await conn.fetchval(has.format("hotline_bigrams"))  # no bigram of Chinese any more
            assert await conn.fetchval(pending) == ["K2"]
            assert await conn.fetchval("SELECT hotline_index_words(10)") == 1
            assert await conn.fetchval("SELECT words FROM ticket_words WHERE ticket_id = 'K2'") == [
                "停",
                "水",
            ]
            await asyncio.to_thread(command.downgrade, migrate.config(url), "0008")
            assert await conn.fetchval(has.format("hotline_bigrams"))
            assert await conn.fetchval("SELECT words FROM ticket_words WHERE ticket_id = 'K2'") == ["停水"]
            assert await conn.fetchval("SELECT to_regproc('hotline_word_keys')") is None
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
