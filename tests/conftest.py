"""Fixtures: a real Redis for the session (REDIS_URL, or an embedded one), flushed for each test, and a real
PostgreSQL for the session (HOTLINE_TEST_DATABASE_URL / TEST_DATABASE_URL, or an embedded one), with a
fresh, migrated database for each test module."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis.asyncio import Redis

from shared.bus import init_streams, redis_client
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from shared.rehydration import close_readers
from tools.embedded import EmbeddedRedis
from tools.embedded_postgres import EmbeddedPostgres


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("HOTLINE_TEST_REDIS_URL")
    if given:
        yield given
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url)
    await client.flushdb()
    await init_streams(client)
    yield client
    await close_readers()  # the record's pools the test's stores opened in this event loop
    await client.aclose()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A server the tests may create databases on (never DATABASE_URL: that may be someone's data)."""
    given = os.environ.get("HOTLINE_TEST_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    with EmbeddedPostgres() as server:
        yield server.url


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A new database for the test module, at the newest migration; dropped after it."""
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(postgres_server_url, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
