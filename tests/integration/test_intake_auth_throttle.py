"""Failed authentication is throttled per client (429 with Retry-After), logged at most once a minute per
client, and counted in a metric that names only the route."""

from __future__ import annotations

import logging

import httpx
import pytest
from redis.asyncio import Redis

from services.intake.settings import DEV_OPEN311_KEY
from shared.standard_webhooks import signed_headers
from tests.integration.intake_support import call, intake_client, post_signed

pytestmark = pytest.mark.redis
PATH = "/v1/webhooks/telephony"
OPEN311 = "/open311/v2/requests.json"
PROXY = ["203.0.113.7"]  # intake_client's peer: the test clients are named by X-Forwarded-For
FORGED = "whsec_Zm9yZ2VkLXNlY3JldA=="


def as_client(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


async def forged(client: httpx.AsyncClient, n: int, address: str = "198.51.100.1") -> httpx.Response:
    body = call(f"forged-{n}")
    headers = {**signed_headers(FORGED, f"msg_forged_{n}", body), "content-type": "application/json"}
    return await client.post(PATH, content=body, headers={**headers, **as_client(address)})


async def test_a_client_failing_authentication_too_often_is_refused_until_the_window_ends(
    redis: Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hotline.intake")
    settings = {
        "auth_failure_limit": 3,
        "auth_failure_window_seconds": 120,
        "trusted_proxies": ["203.0.113.7"],
    }
    async with intake_client(redis_url, **settings) as client:
        assert [(await forged(client, n)).status_code for n in range(3)] == [401, 401, 401]
        throttled = await forged(client, 3)
        assert throttled.status_code == 429
        assert 100 <= int(throttled.headers["retry-after"]) <= 120
        assert throttled.json()["error"]["code"] == "too_many_failures"
        # Now even a correctly signed call is refused before its signature is checked: the provider retries.
        genuine = await post_signed(client, PATH, call("genuine"))
        assert genuine.status_code == 202  # another client (the peer itself) is not affected
        from shared.standard_webhooks import signed_headers
        from tests.integration.intake_support import SECRET

        headers = {**signed_headers(SECRET, "msg_g2", call("g2")), "content-type": "application/json"}
        again = await client.post(PATH, content=call("g2"), headers={**headers, **as_client("198.51.100.1")})
        assert again.status_code == 429
        # Open311 answers in its own format; a wrong api_key is a failed authentication too.
        report = {"api_key": "guess", "service_code": "utilities", "lat": "39.9", "long": "116.4"}
        for _ in range(3):
            wrong = await client.post(
                "/open311/v2/requests.json", data=report, headers=as_client("192.0.2.5")
            )
            assert wrong.status_code == 403
        report["api_key"] = DEV_OPEN311_KEY
        blocked = await client.post(OPEN311, data=report, headers=as_client("192.0.2.5"))
        assert blocked.status_code == 429 and blocked.json()[0]["code"] == 429
        metrics = (await client.get("/metrics/")).text

    lines = [r.getMessage() for r in caplog.records if "refused credentials" in r.getMessage()]
    assert len(lines) == 2, lines  # one per client, not one per failure
    assert any("198.51.100.1" in line for line in lines) and any("192.0.2.5" in line for line in lines)
    assert 'hotline_intake_signature_failures_total{route="telephony"} 3.0' in metrics
    assert 'hotline_intake_signature_failures_total{route="open311_create"} 3.0' in metrics
    assert "hotline_intake_auth_throttled_total 3.0" in metrics
    assert DEV_OPEN311_KEY not in metrics and "guess" not in metrics


async def test_another_replica_learns_of_the_throttle_on_its_next_failure(
    redis: Redis, redis_url: str
) -> None:
    settings = {"auth_failure_limit": 2, "trusted_proxies": ["203.0.113.7"]}
    async with intake_client(redis_url, **settings) as one, intake_client(redis_url, **settings) as two:
        assert [(await forged(one, n)).status_code for n in range(2)] == [401, 401]
        assert (await forged(two, 2)).status_code == 401  # its first failure finds the shared count over
        assert (await forged(two, 3)).status_code == 429
