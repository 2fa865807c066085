"""Departments act on their own tickets only; operators' category fixes become labels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from services.intake.credentials import token_hash
from services.intake.settings import DEV_OPERATOR_TOKEN, dev_department_token
from shared import streams
from shared.codec import decode
from shared.events import TicketRerouted, TicketUpdated
from shared.store import TicketStore, keys
from tests.integration.intake_support import dispatch_to, intake_client, new_ticket

pytestmark = pytest.mark.redis
WATER, HOUSING = "water_utility", "housing_bureau"


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    tokens = {WATER: [token_hash("water-token")], HOUSING: [token_hash("housing-token")]}
    async with intake_client(redis_url, department_tokens=tokens) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def act(
    client: httpx.AsyncClient,
    ticket_id: str,
    action: str,
    token: str = "water-token",
    dept: str = WATER,
    **kwargs: object,
) -> httpx.Response:
    return await client.post(
        f"/v1/departments/{dept}/tickets/{ticket_id}/{action}",
        headers={**auth(token), **kwargs.pop("headers", {})},  # type: ignore[dict-item]
        **kwargs,  # type: ignore[arg-type]
    )


async def test_the_queue_lists_the_departments_open_tickets(client: httpx.AsyncClient, redis: Redis) -> None:
    mine, theirs, moved = [await new_ticket(client, f"q{i}") for i in range(3)]
    for ticket_id, dept in ((mine, WATER), (theirs, HOUSING), (moved, WATER)):
        await dispatch_to(redis, ticket_id, dept)
    await dispatch_to(redis, moved, HOUSING, attempt=2)  # re-dispatched since: no longer water's
    resp = await client.get(f"/v1/departments/{WATER}/tickets", headers=auth("water-token"))
    assert resp.status_code == 200
    listed = resp.json()["tickets"]
    assert [t["ticket_id"] for t in listed] == [mine]
    assert listed[0]["caller_masked"].endswith("5678") and "caller_hash" not in listed[0]


async def test_accept_publishes_one_ticket_updated_and_records_history(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    ticket_id = await new_ticket(client, "a1")
    await dispatch_to(redis, ticket_id, WATER)
    first = await act(client, ticket_id, "accept")
    retry = await act(client, ticket_id, "accept")
    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    [(_, fields)] = await redis.xrange(streams.UPDATED)
    event = decode(fields, TicketUpdated)
    assert (event.ticket_id, event.department, event.action) == (ticket_id, WATER, "accept")
    history = await TicketStore(redis).history(ticket_id)
    assert [h["event"] for h in history].count("department_accept") == 1
    ticket = await TicketStore(redis).get_or_raise(ticket_id)
    assert ticket.status == "dispatched"  # dispatch, not intake, writes the status


async def test_an_idempotency_key_makes_distinct_notes_and_retries_explicit(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    ticket_id = await new_ticket(client, "n1")
    await dispatch_to(redis, ticket_id, WATER)
    one = await act(client, ticket_id, "note", json={"note": "on site"}, headers={"idempotency-key": "k1"})
    same = await act(client, ticket_id, "note", json={"note": "on site"}, headers={"idempotency-key": "k1"})
    two = await act(client, ticket_id, "note", json={"note": "on site"}, headers={"idempotency-key": "k2"})
    assert [r.json()["duplicate"] for r in (one, same, two)] == [False, True, False]
    assert await redis.xlen(streams.UPDATED) == 2


async def test_a_token_for_water_cannot_touch_a_housing_ticket(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    ticket_id = await new_ticket(client, "h1")
    await dispatch_to(redis, ticket_id, HOUSING)
    other_path = await act(client, ticket_id, "resolve", dept=HOUSING)
    own_path = await act(client, ticket_id, "resolve")
    queue = await client.get(f"/v1/departments/{HOUSING}/tickets", headers=auth("water-token"))
    assert (other_path.status_code, own_path.status_code, queue.status_code) == (403, 403, 403)
    assert await redis.xlen(streams.UPDATED) == 0


@pytest.mark.parametrize(
    ("action", "kwargs", "status", "code"),
    [
        ("accept", {"token": "nope"}, 401, "bad_credentials"),
        ("reject", {}, 422, "invalid_payload"),
        ("explode", {}, 422, "invalid_payload"),
        (
            "note",
            {"content": b"note", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("note", {"content": b"{bad", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
    ],
)
async def test_bad_actions_are_refused(
    client: httpx.AsyncClient, redis: Redis, action: str, kwargs: dict[str, object], status: int, code: str
) -> None:
    ticket_id = await new_ticket(client, "b1")
    await dispatch_to(redis, ticket_id, WATER)
    resp = await act(client, ticket_id, action, **kwargs)  # type: ignore[arg-type]
    assert (resp.status_code, resp.json()["error"]["code"]) == (status, code)
    assert await redis.xlen(streams.UPDATED) == 0


async def test_unknown_and_closed_tickets(client: httpx.AsyncClient, redis: Redis) -> None:
    assert (await act(client, "TNOPE", "accept")).status_code == 404
    ticket_id = await new_ticket(client, "c1")
    await dispatch_to(redis, ticket_id, WATER, status="resolved")
    assert (await act(client, ticket_id, "resolve")).status_code == 409
    assert (await act(client, ticket_id, "note", json={"note": "closing remarks"})).status_code == 202


async def test_development_tokens_exist_for_every_routed_department(redis: Redis, redis_url: str) -> None:
    async with intake_client(redis_url) as c:
        resp = await c.get(f"/v1/departments/{HOUSING}/tickets", headers=auth(dev_department_token(HOUSING)))
        assert resp.status_code == 200


async def test_an_operator_correction_updates_the_category_and_stores_a_label(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    ticket_id = await new_ticket(client, "o1")
    await dispatch_to(redis, ticket_id, WATER)
    path = f"/v1/operators/tickets/{ticket_id}/category"
    resp = await client.post(path, json={"category": "housing_property"}, headers=auth(DEV_OPERATOR_TOKEN))
    assert resp.status_code == 202, resp.text
    assert resp.json()["previous"] == "utilities" and resp.json()["duplicate"] is False
    again = await client.post(path, json={"category": "housing_property"}, headers=auth(DEV_OPERATOR_TOKEN))
    assert again.status_code == 202 and again.json()["duplicate"] is True
    [(_, label)] = await redis.xrange(keys.labels)
    assert label[b"category"] == b"housing_property" and label[b"text"] == "小区停水两天了".encode()
    assert label[b"operator"] == b"dev-operator"
    ticket = await TicketStore(redis).get_or_raise(ticket_id)
    assert ticket.category == "housing_property"
    assert (await TicketStore(redis).history(ticket_id))[-1]["event"] == "category_corrected"


@pytest.mark.parametrize(
    ("ticket", "body", "token", "status"),
    [
        ("TNOPE", {"category": "health"}, DEV_OPERATOR_TOKEN, 404),
        (None, {"category": "astrology"}, DEV_OPERATOR_TOKEN, 422),
        (None, {"category": "health"}, "water-token", 401),
    ],
)
async def test_bad_corrections_are_refused(
    client: httpx.AsyncClient, redis: Redis, ticket: str | None, body: dict[str, str], token: str, status: int
) -> None:
    ticket_id = ticket or await new_ticket(client, "o2")
    resp = await client.post(f"/v1/operators/tickets/{ticket_id}/category", json=body, headers=auth(token))
    assert resp.status_code == status
    assert await redis.xlen(keys.labels) == 0


async def test_an_operator_rerouting_publishes_one_event_for_dispatch(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    ticket_id = await new_ticket(client, "r1")
    await dispatch_to(redis, ticket_id, WATER)
    path = f"/v1/operators/tickets/{ticket_id}/route"
    body = {"department": HOUSING, "reason": "the estate's own pipe: property management"}
    first = await client.post(path, json=body, headers=auth(DEV_OPERATOR_TOKEN))
    retry = await client.post(path, json=body, headers=auth(DEV_OPERATOR_TOKEN))
    assert first.status_code == retry.status_code == 202, first.text
    assert retry.json()["duplicate"] is True
    [(_, fields)] = await redis.xrange(streams.REROUTED)
    event = decode(fields, TicketRerouted)
    assert (event.ticket_id, event.department, event.operator) == (ticket_id, HOUSING, "dev-operator")
    assert (await TicketStore(redis).history(ticket_id))[-1]["event"] == "reroute_requested"


@pytest.mark.parametrize(
    ("department", "token", "status"),
    [
        ("astrology_bureau", DEV_OPERATOR_TOKEN, 422),
        (WATER, DEV_OPERATOR_TOKEN, 409),
        (HOUSING, "water-token", 401),
    ],
)
async def test_bad_reroutings_are_refused(
    client: httpx.AsyncClient, redis: Redis, department: str, token: str, status: int
) -> None:
    ticket_id = await new_ticket(client, "r2")
    await dispatch_to(redis, ticket_id, WATER)
    resp = await client.post(
        f"/v1/operators/tickets/{ticket_id}/route", json={"department": department}, headers=auth(token)
    )
    assert resp.status_code == status, resp.text
    assert await redis.xlen(streams.REROUTED) == 0


async def test_an_undispatched_ticket_cannot_be_rerouted(client: httpx.AsyncClient, redis: Redis) -> None:
    ticket_id = await new_ticket(client, "r3")
    resp = await client.post(
        f"/v1/operators/tickets/{ticket_id}/route",
        json={"department": HOUSING},
        headers=auth(DEV_OPERATOR_TOKEN),
    )
    assert (resp.status_code, resp.json()["error"]["code"]) == (409, "not_dispatched")
