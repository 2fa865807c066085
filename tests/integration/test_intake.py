"""Intake over real HTTP semantics (ASGI) against a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from services.intake.app import IntakeSettings, create_app
from services.intake.settings import DEV_OPERATOR_TOKEN, dev_department_token
from shared import streams
from shared.codec import decode
from shared.events import TicketReceived
from shared.standard_webhooks import signed_headers
from shared.store import TicketStore, keys
from tests.integration.intake_support import (
    NUMBER,
    SECRET,
    SURVEY_SECRET,
    call,
    dispatch_to,
    intake_client,
    post_signed,
)

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url, max_body_bytes=4096) as c:
        yield c


async def post(
    client: httpx.AsyncClient,
    body: bytes,
    webhook_id: str = "msg_1",
    secret: str = SECRET,
    content_type: str = "application/json",
) -> httpx.Response:
    return await post_signed(client, "/v1/webhooks/telephony", body, webhook_id, secret, content_type)


async def test_a_signed_call_becomes_a_stored_ticket_and_one_event(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    resp = await post(client, call())
    assert resp.status_code == 202
    ticket_id = resp.json()["ticket_id"]
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    event = decode(fields, TicketReceived)
    assert (event.ticket_id, event.text, event.channel) == (ticket_id, "小区停水两天了", "telephony")
    ticket = await TicketStore(redis).get_or_raise(ticket_id)
    assert ticket.status == "received" and ticket.lat == 39.9
    assert ticket.caller_masked == "*******5678"  # national form: +86 is not part of the number


async def test_retries_give_the_same_ticket_and_no_second_event(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    first = await post(client, call(), webhook_id="msg_1")
    again_same_delivery = await post(client, call(), webhook_id="msg_1")
    again_new_delivery = await post(client, call(), webhook_id="msg_2")
    ids = {r.json()["ticket_id"] for r in (first, again_same_delivery, again_new_delivery)}
    assert len(ids) == 1
    assert [r.json()["duplicate"] for r in (first, again_same_delivery, again_new_delivery)] == [
        False,
        True,
        True,
    ]
    assert await redis.xlen(streams.RECEIVED) == 1


async def test_a_replayed_delivery_id_with_another_call_leaves_that_call_free_for_its_own_delivery(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    first = await post(client, call("call-1"), webhook_id="msg_1")
    replayed = await post(client, call("call-2"), webhook_id="msg_1")
    own = await post(client, call("call-2"), webhook_id="msg_2")
    assert replayed.json() == {"ticket_id": first.json()["ticket_id"], "duplicate": True}
    assert own.json()["duplicate"] is False and own.json()["ticket_id"] != first.json()["ticket_id"]
    assert await redis.xlen(streams.RECEIVED) == 2


async def test_a_retry_after_the_dedupe_markers_expired_does_not_reset_the_ticket(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """The ticket id follows from the call id, so a late retry (an Open311 app re-posting the same
    body, a provider replaying after the markers' 7 days) finds the ticket, not a fresh one."""
    first = await post(client, call(), webhook_id="msg_1")
    ticket_id = first.json()["ticket_id"]
    await dispatch_to(redis, ticket_id, "water_utility")
    await redis.delete(*[k async for k in redis.scan_iter("hotline:dedupe:*")])  # as DEDUPE_TTL_SECONDS do
    late = await post(client, call(), webhook_id="msg_2")
    assert late.status_code == 202 and late.json() == {"ticket_id": ticket_id, "duplicate": True}
    ticket = await TicketStore(redis).get(ticket_id)
    assert ticket is not None and ticket.status == "dispatched" and ticket.department == "water_utility"
    assert await redis.xlen(streams.RECEIVED) == 1
    assert await redis.llen(keys.history(ticket_id)) == 2  # received, dispatched: no second "received"


async def test_a_rate_counter_that_lost_its_expiry_gets_its_window_back(redis: Redis, redis_url: str) -> None:
    key = "hotline:rate:webhook:203.0.113.7"
    await redis.set(key, 5)  # over the limit, with no expiry: without one the source would be refused forever
    async with intake_client(redis_url, rate_limits={"webhook": 3}, rate_window_seconds=30) as c:
        refused = await post(c, call("call-9"), webhook_id="msg_9")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert 0 < await redis.ttl(key) <= 30


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "code"),
    [
        (call(), {"secret": "whsec_d3Jvbmc="}, 401, "bad_signature"),
        (call(), {"content_type": "text/plain"}, 415, "unsupported_media_type"),
        (call(transcript="x" * 5000), {}, 413, "too_large"),
        (b"{not json", {}, 400, "invalid_json"),
        (call(transcript=None), {}, 422, "invalid_payload"),
        (call(location={"lat": 500}), {}, 422, "invalid_payload"),
        (call(started_at="9999-12-31T23:59:59-14:00"), {}, 422, "invalid_payload"),  # year 10000 in UTC
    ],
)
async def test_bad_input_gets_a_precise_4xx_and_stores_nothing(
    client: httpx.AsyncClient, redis: Redis, body: bytes, kwargs: dict[str, str], status: int, code: str
) -> None:
    resp = await post(client, body, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_schema_errors_name_the_fields(client: httpx.AsyncClient) -> None:
    resp = await post(client, call(location={"lat": 500}))
    assert [f["field"] for f in resp.json()["error"]["fields"]] == ["location.lat"]


async def test_half_a_coordinate_is_refused_not_silently_dropped(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    # The classifier places a ticket by coordinates only with both; a lone lat was accepted and ignored.
    resp = await post(client, call(location={"lat": 39.9, "address": "No. 5"}))
    assert resp.status_code == 422
    assert [f["field"] for f in resp.json()["error"]["fields"]] == ["location"]
    assert await redis.xlen(streams.RECEIVED) == 0
    assert (await post(client, call(location={"address": "No. 5"}))).status_code == 202


async def test_unsigned_requests_are_refused(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/webhooks/telephony", content=call(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 401


async def test_redis_down_means_503_so_the_provider_retries() -> None:
    app = create_app(IntakeSettings(redis_url="redis://127.0.0.1:1/0", webhook_secrets=[SECRET]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as c:
        resp = await post(c, call())
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "5"
        assert (await c.get("/readyz")).status_code == 503
        assert (await c.get("/livez")).status_code == 200
    await app.state.redis.aclose()


async def test_the_caller_number_never_reaches_events_store_or_metrics(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    resp = await post(client, call())
    ticket_id = resp.json()["ticket_id"]
    digits = NUMBER.lstrip("+")
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    assert digits.encode() not in fields[b"__data__"]
    assert all(
        digits.encode() not in v for v in (await redis.hgetall(f"hotline:ticket:{ticket_id}")).values()
    )
    metrics = (await client.get("/metrics/")).text
    assert "hotline_intake_requests_total" in metrics and digits not in metrics


async def test_both_secrets_are_accepted_during_rotation(redis: Redis, redis_url: str) -> None:
    new = "whsec_bmV3LXNlY3JldA=="
    async with intake_client(redis_url, webhook_secrets=[new, SECRET]) as c:
        assert (await post(c, call("a"), webhook_id="m1", secret=SECRET)).status_code == 202
        assert (await post(c, call("b"), webhook_id="m2", secret=new)).status_code == 202
        assert (await post(c, call("c"), webhook_id="m3", secret="whsec_b2xk")).status_code == 401
    assert await redis.xlen(streams.RECEIVED) == 2


async def test_a_stale_timestamp_is_refused_as_a_replay(client: httpx.AsyncClient, redis: Redis) -> None:
    body = call()
    headers = {
        **signed_headers(SECRET, "msg_old", body, timestamp=int(time.time()) - 301),
        "content-type": "application/json",
    }
    resp = await client.post("/v1/webhooks/telephony", content=body, headers=headers)
    assert resp.status_code == 401
    assert "tolerance" in resp.json()["error"]["message"]
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_a_body_over_the_cap_is_refused_even_without_content_length(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    resp = await client.post(
        "/v1/webhooks/telephony", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_a_source_over_its_rate_gets_429_with_retry_after(redis: Redis, redis_url: str) -> None:
    async with intake_client(redis_url, rate_limits={"webhook": 3}, rate_window_seconds=30) as c:
        codes = [(await post(c, call(f"c{i}"), webhook_id=f"m{i}")).status_code for i in range(5)]
        limited = await post(c, call("late"), webhook_id="late")
        metrics = (await c.get("/metrics/")).text
    assert codes == [202, 202, 202, 429, 429]
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert await redis.xlen(streams.RECEIVED) == 3
    assert 'hotline_intake_rejected_payloads_total{reason="rate_limited",route="telephony"} 3.0' in metrics
    assert 'hotline_intake_requests_total{route="telephony",status="429"} 3.0' in metrics


async def test_metrics_count_signature_failures_and_latency(client: httpx.AsyncClient) -> None:
    await post(client, call(), secret="whsec_d3Jvbmc=")
    await post(client, call())
    metrics = (await client.get("/metrics/")).text
    assert 'hotline_intake_signature_failures_total{route="telephony"} 1.0' in metrics
    assert 'hotline_intake_request_duration_seconds_count{route="telephony"} 2.0' in metrics
    assert 'hotline_intake_tickets_accepted_total{channel="telephony",outcome="new"} 1.0' in metrics


async def test_transcript_and_notes_together_are_capped_at_the_event_limit(
    redis: Redis, redis_url: str
) -> None:
    async with intake_client(redis_url) as c:
        resp = await post(c, call(transcript="话" * 15_000, agent_notes="记" * 15_000))
    assert resp.status_code == 422
    assert "together exceed" in resp.json()["error"]["fields"][0]["problem"]


@pytest.mark.parametrize("suffix", [":history", ":applied"])
async def test_an_id_naming_a_ticket_s_other_keys_is_unknown_not_a_storage_outage(
    client: httpx.AsyncClient, redis: Redis, suffix: str
) -> None:
    """`{ticket}:history` is the ticket's history list in Redis: read as a ticket hash it made Redis answer
    WRONGTYPE, which every route took for an outage (503, Retry-After: providers retry forever, and the
    5xx alert fires); Open311's routes are public."""
    ticket_id = (await post(client, call(), webhook_id="msg_1")).json()["ticket_id"]
    await redis.sadd(keys.applied(ticket_id), "dispatch:x")
    odd = ticket_id + suffix
    operator = {"authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
    department = {"authorization": f"Bearer {dev_department_token('water_utility')}"}
    answers = [
        await client.get(f"/open311/v2/requests/{odd}.json"),
        await client.get(f"/open311/v2/tokens/{odd}.json"),
        await client.post(
            f"/v1/operators/tickets/{odd}/category", json={"category": "health"}, headers=operator
        ),
        await client.post(
            f"/v1/operators/tickets/{odd}/route", json={"department": "health_commission"}, headers=operator
        ),
        await client.post(f"/v1/departments/water_utility/tickets/{odd}/accept", headers=department),
        await post_signed(
            client,
            "/v1/webhooks/survey",
            json.dumps({"ticket_id": odd, "resolved": True, "satisfaction": 5}).encode(),
            "msg_s",
            SURVEY_SECRET,
        ),
    ]
    assert [r.status_code for r in answers] == [404] * len(answers), [r.text for r in answers]
    listing = await client.get(
        "/open311/v2/requests.json", params={"service_request_id": f"{odd},{ticket_id}"}
    )
    assert listing.status_code == 200 and [r["service_request_id"] for r in listing.json()] == [ticket_id]
