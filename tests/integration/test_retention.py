"""Redis stays flat, on a real Redis and a real PostgreSQL: a closed ticket leaves Redis only once the
recorder has written its final state, the Open311 reads find it in the record, and whatever concerns it
later (a citizen's comment, a reopening, the console's ticket page) brings it back from there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from services.intake.settings import DEV_OPEN311_KEY
from services.recorder.app import RecorderWorker
from services.recorder.retention import Sweep, sweep
from shared import streams
from shared.db.urls import asyncpg_dsn
from shared.effects import StoreWrite
from shared.events import TicketReopened, utcnow
from shared.settings import DATA_DIR
from shared.store import TicketStore, iso, keys, updates_bucket
from tests.integration.console_support import console_client, sign_in
from tests.integration.dispatch_support import Harness
from tests.integration.intake_support import classified_utilities, intake_client
from tests.integration.test_intake_open311 import department_action
from tools.embedded import free_port

pytestmark = pytest.mark.redis
BASE = "/open311/v2"
RETENTION = timedelta(days=30)


@pytest.fixture
async def open311(redis: Redis, redis_url: str, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url, DATABASE_URL=database_url, timezone="Asia/Shanghai") as client:
        yield client


async def _revisions(database_url: str, ticket_ids: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT ticket_id, rev FROM tickets WHERE ticket_id = ANY($1::text[])", ticket_ids
        )
    finally:
        await conn.close()
    return {r["ticket_id"]: r["rev"] for r in rows}


async def _sweep(redis: Redis, database_url: str, days_later: int = 31) -> Sweep:
    return await sweep(
        redis, lambda ids: _revisions(database_url, ids), RETENTION, utcnow() + timedelta(days=days_later)
    )


async def _resolved_ticket(open311: httpx.AsyncClient, redis: Redis, description: str) -> str:
    """A citizen's report through Open311, dispatched, accepted and resolved by the water utility."""
    form = {
        "api_key": DEV_OPEN311_KEY,
        "service_code": "utilities",
        "lat": "39.91",
        "long": "116.40",
        "description": description,
        "attribute[supply]": "water",
    }
    created = (await open311.post(f"{BASE}/requests.json", data=form)).json()[0]["service_request_id"]
    ticket = await TicketStore(redis, record=None).get_or_raise(created)
    assert ticket.received_at is not None
    dispatch = Harness(redis, DATA_DIR / "routing.yaml")
    await dispatch.feed(
        streams.CLASSIFIED, classified_utilities(created, ticket.received_at, f"{created}-classified")
    )
    await dispatch.feed(
        streams.UPDATED,
        department_action(created, f"{created}-u1", "accept", "crew on the way"),
        department_action(created, f"{created}-u2", "resolve", "main repaired"),
    )
    return str(created)


async def _in_redis(redis: Redis, ticket_id: str) -> dict[str, bool]:
    return {
        "hash": bool(await redis.exists(keys.ticket(ticket_id))),
        "history": bool(await redis.exists(keys.history(ticket_id))),
        "applied": bool(await redis.exists(keys.applied(ticket_id))),
        "by_created": await redis.zscore(keys.by_created, ticket_id) is not None,
    }


async def test_a_closed_ticket_leaves_redis_only_once_recorded_and_comes_back_when_asked_for(
    redis: Redis, database_url: str, recorder: RecorderWorker, open311: httpx.AsyncClient
) -> None:
    ticket_id = await _resolved_ticket(open311, redis, "Burst water main on Chang'an Avenue")
    store = TicketStore(redis, record=None)
    before = await store.get_or_raise(ticket_id)
    history = await store.history(ticket_id)
    hours = {updates_bucket(datetime.fromisoformat(e["at"]))[0] for e in history if "status" in e}
    assert before.status == "resolved" and hours
    # Queued for review before closing took tickets off the queue: leaving Redis takes it off too.
    await redis.zadd(keys.review, {ticket_id: 1.0})

    # Closed for longer than the retention, but the record does not have it: it stays.
    assert await _sweep(redis, database_url) == Sweep(scanned=1, closed=1, unrecorded=1, evicted=0)
    # Not closed for the retention yet: it stays, recorded or not.
    await recorder.record_tickets_once()
    assert await _sweep(redis, database_url, days_later=29) == Sweep(scanned=0)
    assert (await _sweep(redis, database_url)).evicted == 1
    assert await _in_redis(redis, ticket_id) == dict.fromkeys(
        ("hash", "history", "applied", "by_created"), False
    )
    for hour in hours:
        assert not await redis.sismember(hour, ticket_id)
    assert await redis.zscore(keys.review, ticket_id) is None

    # Open311 searches and update listings read the record, and bring nothing back into Redis.
    window = {"start_date": iso(utcnow() - timedelta(hours=1))}
    found = (await open311.get(f"{BASE}/requests.json", params={**window, "status": "closed"})).json()
    assert [(r["service_request_id"], r["status"]) for r in found] == [(ticket_id, "closed")]
    assert found[0]["description"] == "Burst water main on Chang'an Avenue"
    updates = (await open311.get(f"{BASE}/servicerequestupdates.json", params=window)).json()
    assert [u["update_id"] for u in updates] == [f"{ticket_id}-{i}" for i in range(len(history))]
    assert [u["status"] for u in updates] == ["open", "open", "in_progress", "fixed"]
    assert not await redis.exists(keys.ticket(ticket_id))

    # Asked for by id, it is back in Redis as it was.
    one = (await open311.get(f"{BASE}/requests/{ticket_id}.json")).json()
    assert one[0]["status"] == "closed"
    back = await store.get_or_raise(ticket_id)
    assert back.model_dump() == before.model_dump()
    assert await store.history(ticket_id) == history
    assert await redis.zscore(keys.by_created, ticket_id) is not None
    # Unchanged since it came back: it may leave again at once.
    assert (await _sweep(redis, database_url)).evicted == 1


async def test_a_reopened_evicted_ticket_is_dispatched_again_from_its_record(
    redis: Redis,
    database_url: str,
    recorder: RecorderWorker,
    open311: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticket_id = await _resolved_ticket(open311, redis, "No water since Monday in building 3")
    await recorder.record_tickets_once()
    assert (await _sweep(redis, database_url)).evicted == 1
    recorded_history = len(await _history(database_url, ticket_id))

    monkeypatch.setenv("DATABASE_URL", database_url)  # the dispatch worker's store reads the record
    dispatch = Harness(redis, DATA_DIR / "routing.yaml")
    reopened = TicketReopened(
        event_id=f"{ticket_id}-reopened",
        ticket_id=ticket_id,
        occurred_at=utcnow(),
        reason="the citizen says the water is still off",
        department="water_utility",
    )
    await dispatch.feed(streams.REOPENED, reopened)
    ticket = await TicketStore(redis, record=None).get_or_raise(ticket_id)
    assert ticket.status == "dispatched" and ticket.department == "water_utility"
    history = await TicketStore(redis, record=None).history(ticket_id)
    assert len(history) > recorded_history and history[-1]["event"] == "reopened"
    # Changed again: not evictable until the recorder has this new state.
    await redis.hset(keys.ticket(ticket_id), mapping={"status": "resolved", "updated_at": iso(utcnow())})
    assert (await _sweep(redis, database_url)).evicted == 0


async def test_open_tickets_and_changes_after_the_recorders_write_stay(
    redis: Redis, database_url: str, recorder: RecorderWorker, open311: httpx.AsyncClient
) -> None:
    changed = await _resolved_ticket(open311, redis, "Street light out at the east gate")
    still_open = await _resolved_ticket(open311, redis, "Sewage smell near the market")
    await redis.hset(keys.ticket(still_open), "status", "accepted")
    await recorder.record_tickets_once()
    # A change the recorder has not written yet (here a late survey answer on the ticket).
    await TicketStore(redis, record=None).apply(
        StoreWrite(ticket_id=changed, event_id="late", fields={"eval_survey_status": "answered"}),
        scope="evaluation",
    )
    result = await _sweep(redis, database_url)
    assert (result.closed, result.evicted, result.unrecorded) == (1, 0, 1)
    assert (await _in_redis(redis, changed))["hash"] and (await _in_redis(redis, still_open))["hash"]


async def test_the_consoles_ticket_page_opens_an_evicted_ticket_from_its_record(
    redis: Redis, redis_url: str, database_url: str, recorder: RecorderWorker, open311: httpx.AsyncClient
) -> None:
    ticket_id = await _resolved_ticket(open311, redis, "Broken hydrant outside number 12")
    await recorder.record_tickets_once()
    assert (await _sweep(redis, database_url)).evicted == 1

    async with console_client(redis_url, DATABASE_URL=database_url) as console:
        assert (await sign_in(console, "operator")).status_code == 303
        page = await console.get(f"/tickets/{ticket_id}")
        assert page.status_code == 200
        assert "Broken hydrant outside number 12" in page.text
        assert "main repaired" in page.text  # the timeline, from the record's history
        assert (await console.get("/tickets/T-never-was")).status_code == 404
    async with console_client(redis_url, DATABASE_URL=database_url) as console:
        await sign_in(console, "environment_bureau")
        assert (await console.get(f"/tickets/{ticket_id}")).status_code == 403  # not its ticket

    assert (await _sweep(redis, database_url)).evicted == 1
    # The record out of reach: "try again", not "no such ticket".
    away = f"postgresql://hotline@127.0.0.1:{free_port()}/hotline"
    async with console_client(redis_url, DATABASE_URL=away) as console:
        await sign_in(console, "operator")
        answer = await console.get(f"/tickets/{ticket_id}")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


async def _history(database_url: str, ticket_id: str) -> list[str]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return [
            r["entry"]
            for r in await conn.fetch("SELECT entry FROM ticket_history WHERE ticket_id = $1", ticket_id)
        ]
    finally:
        await conn.close()
