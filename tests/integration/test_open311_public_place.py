"""Open311 GET requests publishes where a phone-call ticket is only to the street and ~500 m, as set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.intake.settings import DEV_OPEN311_KEY
from tests.integration.intake_support import call, intake_client, post_signed

pytestmark = pytest.mark.redis
HOME = {"lat": 39.9312, "lon": 116.4137, "address": "西山街道 幸福路 8 号"}


async def published(client: httpx.AsyncClient, ticket_id: str) -> tuple[Any, Any, Any]:
    [request] = (await client.get(f"/open311/v2/requests/{ticket_id}.json")).json()
    listed = (await client.get("/open311/v2/requests.json")).json()
    assert [r for r in listed if r["service_request_id"] == ticket_id] == [request]
    return request["address"], request["lat"], request["long"]


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (None, ("西山街道 幸福路", 39.93, 116.415)),  # the default: the street and the ~500 m cell
        (["street"], ("西山街道 幸福路", None, None)),
        (["rounded"], (None, 39.93, 116.415)),
        ([], (None, None, None)),
    ],
)
async def test_a_caller_s_home_is_never_published_exactly(
    redis: Redis, redis_url: str, shown: list[str] | None, expected: tuple[Any, Any, Any]
) -> None:
    settings = {} if shown is None else {"open311_public_location": shown}
    async with intake_client(redis_url, **settings) as client:
        resp = await post_signed(client, "/v1/webhooks/telephony", call("home", location=HOME))
        phoned = resp.json()["ticket_id"]
        report = {
            "api_key": DEV_OPEN311_KEY,
            "service_code": "utilities",
            "lat": "39.9312",
            "long": "116.4137",
            "address_string": "幸福路 8 号",
        }
        posted = (await client.post("/open311/v2/requests.json", data=report)).json()[0]["service_request_id"]
        assert await published(client, phoned) == expected
        # what a citizen chose to publish through Open311 stays as they sent it
        assert await published(client, posted) == ("幸福路 8 号", 39.9312, 116.4137)
