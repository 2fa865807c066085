"""X-Forwarded-For names the client only when a configured proxy (the ingress) sends it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from services.intake.settings import IntakeSettings
from tests.integration.intake_support import intake_client

pytestmark = pytest.mark.redis
PEER = "203.0.113.7"  # intake_client's peer address
CLIENT = "198.51.100.9"
# (trusted proxies, X-Forwarded-For, the client counted); the console's sign-in limit is held to them too.
FORWARDING = [
    (["203.0.113.0/24"], CLIENT, CLIENT),
    # each proxy appends: the client is the last address no trusted proxy owns, whatever came before
    (["203.0.113.0/24", "10.0.0.0/8"], f"192.0.2.1, {CLIENT}, 10.1.2.3", CLIENT),
    ([], CLIENT, PEER),
    (["10.0.0.0/8"], CLIENT, PEER),
]


async def counted_sources(redis: Redis) -> set[str]:
    return {k.decode().rsplit(":", 1)[1] async for k in redis.scan_iter(match="hotline:rate:open311_read:*")}


@pytest.mark.parametrize(("trusted", "forwarded", "counted"), FORWARDING)
async def test_the_client_address_comes_from_the_header_only_through_a_trusted_proxy(
    redis: Redis, redis_url: str, trusted: list[str], forwarded: str, counted: str
) -> None:
    async with intake_client(redis_url, trusted_proxies=trusted) as client:
        resp = await client.get("/open311/v2/services.json", headers={"x-forwarded-for": forwarded})
    assert resp.status_code == 200
    assert await counted_sources(redis) == {counted}


def test_a_trusted_proxy_must_be_an_address_or_a_network() -> None:
    with pytest.raises(ValidationError, match="not an IP address or CIDR"):
        IntakeSettings(trusted_proxies=["ingress.example.org"])
    assert IntakeSettings(trusted_proxies=[" 10.0.0.0/8", "::1"]).trusted_proxies == ["10.0.0.0/8", "::1"]
