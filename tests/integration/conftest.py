"""Fixtures of the integration tests that read or write the record (PostgreSQL) through the recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from services.recorder.app import RecorderSettings, RecorderWorker, build
from shared.db.urls import asyncpg_dsn

# A recorder that writes a ticket's state as soon as it changes, whether at rest or not.
IMMEDIATE = {"settle_seconds": 0.0, "settle_max_seconds": 0.0}


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test record, emptied of every ticket and event first."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    await conn.execute("TRUNCATE ticket_events, tickets, ticket_history, ticket_words, ticket_words_pending")
    yield conn
    await conn.close()


@pytest.fixture
async def recorder(
    redis: Redis, redis_url: str, database_url: str, pg: asyncpg.Connection
) -> AsyncIterator[RecorderWorker]:
    """A recorder on the test Redis and the emptied record, writing a ticket's state as soon as it changes."""
    worker, _ = build(RecorderSettings(redis_url=redis_url, database_url=database_url, **IMMEDIATE))
    yield worker
    await worker.database.close()
    await worker.redis.aclose()
