"""Faults against real processes and a real Redis started here: nothing accepted is ever lost.

Each scenario is bounded in time. Claim idle times are short so that recovery happens within the test.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest

from services.intake.app import IntakeSettings
from shared import streams
from shared.bus import redis_client
from shared.codec import DATA_FIELD, pack
from shared.events import TicketReceived, utcnow
from shared.store import TicketStore
from tests.faults.departments import routing_with_webhooks
from tests.support import Recorder, recording_server, wait_for
from tools.audit import audit
from tools.demo import make_calls, post_calls, wait_dispatched
from tools.embedded import EmbeddedRedis
from tools.runner import Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
SECRET = IntakeSettings().webhook_secrets[0]
FAST_CLAIMS = {"HOTLINE_CLAIM_IDLE_MS": "2000", "HOTLINE_GRACEFUL_TIMEOUT": "10"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis this test may kill and restart (with AOF in tmp_path)."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.close()


@pytest.fixture
async def department() -> AsyncIterator[Recorder]:
    """Every department's webhook endpoint: a real HTTP server recording each delivery."""
    async with recording_server() as recorder:
        yield recorder


@pytest.fixture
async def stack(own_redis: EmbeddedRedis, tmp_path: Path, department: Recorder) -> AsyncIterator[Stack]:
    env = {**FAST_CLAIMS, **routing_with_webhooks(tmp_path, department.url)}
    running = Stack(redis_url=own_redis.url, log_dir=tmp_path / "logs", extra_env=env)
    # Started off the event loop: the department's server must keep answering meanwhile.
    await asyncio.to_thread(running.start)
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)
        # A 500 fails a test with nothing but its status; the traceback is in the service's log, shown
        # with the failure (pytest prints a failed test's captured output).
        for log in sorted((tmp_path / "logs").glob("*.log")):
            text = log.read_text(errors="replace")
            if "unhandled error" in text:
                print(f"--- {log.name}\n{text[max(0, text.index('unhandled error') - 200) :][:6000]}")


async def assert_each_delivered_once(
    department: Recorder, tickets: dict[str, str], *, killed: bool = False
) -> None:
    """Every dispatched ticket reached its department's webhook once.

    After a kill -9 a delivery the department had answered but dispatch had not yet recorded is sent
    again, and no sender can avoid that; it is the same `webhook-id` (the event id), which receivers
    de-duplicate on (Standard Webhooks). So after kills: one id per ticket; otherwise: one delivery.
    """

    async def all_delivered() -> bool:
        return len(set(department.delivered())) >= len(tickets)

    await wait_for(all_delivered, "every ticket's department webhook", within=120)
    ids_of = department.ids_per_ticket()
    assert set(ids_of) == set(tickets.values())
    assert all(len(ids) == 1 for ids in ids_of.values()), "a ticket was delivered under two event ids"
    delivered = department.delivered()
    if not killed:
        assert len(delivered) == len(set(delivered)) == len(tickets)


async def assert_all_done_exactly_once(
    stack: Stack, tickets: dict[str, str], *, no_republish: bool = False
) -> None:
    assert stack.redis_url is not None
    outcome = await wait_dispatched(stack.redis_url, list(tickets.values()), wait_seconds=120)
    assert outcome.missing == [], f"{len(outcome.missing)} tickets never dispatched"
    redis = redis_client(stack.redis_url)
    try:
        result = await audit(redis, list(tickets.values()))
    finally:
        await redis.aclose()
    assert result.missing == [] and result.store_twice == []
    assert result.evaluated == len(tickets)
    if no_republish:
        assert result.published_twice == {streams.CLASSIFIED: 0, streams.DISPATCHED: 0}


async def test_kill_9_each_worker_in_turn_while_tickets_flow(stack: Stack, department: Recorder) -> None:
    calls = make_calls(1000, seed=11)
    posting = asyncio.create_task(post_calls(stack.url_of("intake"), SECRET, calls, rate=250))
    for service in ("classifier", "dispatch", "evaluation", "insight"):
        await asyncio.sleep(0.7)
        assert stack.stop_service(service, sig=signal.SIGKILL) == -signal.SIGKILL
        await asyncio.sleep(0.3)
        stack.start_service(service)
    tickets = await posting
    assert len(tickets) == 1000
    await assert_all_done_exactly_once(stack, tickets)
    await assert_each_delivered_once(department, tickets, killed=True)


async def test_redis_restart_loses_nothing_acknowledged(stack: Stack, own_redis: EmbeddedRedis) -> None:
    calls = make_calls(600, seed=12)
    posting = asyncio.create_task(post_calls(stack.url_of("intake"), SECRET, calls, rate=200, attempts=30))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_redis.stop, True)  # kill -9 Redis mid-run
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_redis.start)  # same port, same AOF directory
    tickets = await posting
    # Every call the provider saw acknowledged (202) must come out the other end.
    assert len(tickets) == len(calls)
    await assert_all_done_exactly_once(stack, tickets)


async def test_poison_events_go_to_the_dlq_and_the_rest_flows(stack: Stack) -> None:
    assert stack.redis_url is not None
    redis = redis_client(stack.redis_url)
    try:
        future = TicketReceived(
            event_id="p1",
            ticket_id="TPOISON1",
            occurred_at=utcnow(),
            channel="telephony",
            source_id="p1",
            text="x",
            received_at=utcnow(),
            version=7,
        )
        poison = [
            {DATA_FIELD: b"not json{"},
            {DATA_FIELD: pack(future)},
            {b"flat": b"fields"},
            {DATA_FIELD: b'{"event_id": "e", "ticket_id": "T"}'},
        ]
        for fields in poison:
            await redis.xadd(streams.RECEIVED, fields)  # type: ignore[arg-type]
        tickets = await post_calls(stack.url_of("intake"), SECRET, make_calls(50, seed=13))
        await assert_all_done_exactly_once(stack, tickets)
        # Each group reading the stream (the classifier, the recorder) refuses each poison entry once. The
        # recorder need not have read them all when the tickets are dispatched (its reads linger 250 ms).
        expected = {group: len(poison) for group in streams.GROUPS[streams.RECEIVED]}

        async def dead_lettered() -> Counter[str]:
            dead = await redis.xrange(streams.dlq(streams.RECEIVED))
            return Counter(f[b"group"].decode() for _, f in dead)

        await wait_for(lambda: _at_least(dead_lettered(), expected), "every group's dead letters", within=30)
        await asyncio.sleep(0.5)  # and no more than one each: a second refusal would come within a read
        assert await dead_lettered() == expected
        dead = await redis.xrange(streams.dlq(streams.RECEIVED))
        errors = " | ".join(f[b"error"].decode() for _, f in dead)
        assert "unsupported schema version 7" in errors and "no __data__" in errors
        assert "invalid TicketReceived" in errors
        assert (await redis.xpending(streams.RECEIVED, streams.CLASSIFIER))["pending"] == 0
    finally:
        await redis.aclose()


async def test_sigterm_during_load_finishes_in_flight_work_and_processes_nothing_twice(
    stack: Stack, department: Recorder
) -> None:
    calls = make_calls(600, seed=14)
    posting = asyncio.create_task(post_calls(stack.url_of("intake"), SECRET, calls, rate=200))
    for service in ("classifier", "dispatch", "evaluation"):
        await asyncio.sleep(0.6)
        code = await asyncio.to_thread(stack.stop_service, service, signal.SIGTERM, 30)
        assert code in (0, -signal.SIGTERM), f"{service} exited {code}"
        stack.start_service(service)
    tickets = await posting
    assert len(tickets) == len(calls)
    # Graceful stops finish and ack what they hold, so not even an output event is appended twice.
    await assert_all_done_exactly_once(stack, tickets, no_republish=True)
    await assert_each_delivered_once(department, tickets)


async def test_a_department_down_slow_or_failing_delays_its_tickets_and_loses_none(
    stack: Stack, department: Recorder
) -> None:
    # The first 40 requests are refused, every third of them slowly, then the department's system recovers.
    # Counted in requests, not seconds: on a slow machine a timed outage can end before the first delivery.
    outage = 40

    def status(n: int) -> int:
        return 500 if n < outage else 200

    def delay(n: int) -> float:
        return 2.0 if n < outage and n % 3 == 0 else 0.0

    department.status, department.delay = status, delay
    tickets = await post_calls(stack.url_of("intake"), SECRET, make_calls(120, seed=16))
    # Dispatch does not wait on the department: tickets are dispatched while deliveries are refused.
    await assert_all_done_exactly_once(stack, tickets)
    # Deliveries run behind dispatch: the outage is seen once they have all gone through, not before.
    await assert_each_delivered_once(department, tickets)
    assert any(s == 500 for _, s in department.answers), "the outage was seen by the sender"
    failed_then_delivered = {i for i, s in department.answers if s == 500} & set(department.delivered())
    assert failed_then_delivered, "deliveries refused during the outage were retried with the same webhook-id"


@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
async def test_every_acknowledged_call_survives_a_redis_crash(tmp_path: Path, appendfsync: str) -> None:
    """Intake alone: what it answered 202 for is in Redis after kill -9 and a restart from the AOF."""
    server = EmbeddedRedis(tmp_path / "redis", appendfsync=appendfsync).start()
    try:
        with Stack(redis_url=server.url, services=("intake",)) as stack:
            tickets = await post_calls(stack.url_of("intake"), SECRET, make_calls(300, seed=15))
            server.stop(kill=True)  # no graceful shutdown, no final fsync
            server.start()
            redis = redis_client(server.url)
            try:
                stored = await TicketStore(redis).get_many(list(tickets.values()))
                assert all(t is not None for t in stored)
                assert await redis.xlen(streams.RECEIVED) == len(tickets)
            finally:
                await redis.aclose()
    finally:
        server.close()


async def _at_least(counted: Awaitable[Counter[str]], expected: dict[str, int]) -> bool:
    got = await counted
    return all(got[group] >= n for group, n in expected.items())
