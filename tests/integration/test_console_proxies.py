"""The console's failed-sign-in limit per address counts the client a trusted proxy names, and only
then: from any other peer X-Forwarded-For is ignored, so it cannot be used to dodge the limit."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.integration.console_support import PEER, console_client, sign_in
from tests.integration.test_intake_proxies import CLIENT, FORWARDING

pytestmark = pytest.mark.redis


async def counted_clients(redis: Redis) -> set[str]:
    pattern = "hotline:console:login-failures:client:*"
    return {k.decode().rsplit(":", 1)[1] async for k in redis.scan_iter(match=pattern)}


@pytest.mark.parametrize(("trusted", "forwarded", "counted"), FORWARDING)
async def test_a_failed_sign_in_counts_the_client_a_trusted_proxy_names(
    redis: Redis, redis_url: str, trusted: list[str], forwarded: str, counted: str
) -> None:
    async with console_client(redis_url, trusted_proxies=trusted) as client:
        answer = await sign_in(client, "operator", "wrong", headers={"x-forwarded-for": forwarded})
    assert answer.status_code == 401
    assert await counted_clients(redis) == {counted}


async def test_clients_behind_one_proxy_are_limited_each_not_together(redis: Redis, redis_url: str) -> None:
    async with console_client(redis_url, trusted_proxies=[PEER], console_login_attempts=1) as client:
        for n in range(10):  # ten failures from one address (each a new name): its limit (10 x 1)
            await sign_in(client, f"guess{n}", "wrong", headers={"x-forwarded-for": CLIENT})
        blocked = await sign_in(client, "operator", headers={"x-forwarded-for": CLIENT})
        other = await sign_in(client, "operator", headers={"x-forwarded-for": "198.51.100.10"})
    assert blocked.status_code == 429
    assert other.status_code == 303 and other.headers["location"] == "/operator"
