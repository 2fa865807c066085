"""Fixtures: a real Redis for the session (REDIS_URL, or an embedded one), flushed for each test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from shared.bus import init_streams, redis_client
from tools.embedded import EmbeddedRedis


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
    await client.aclose()
