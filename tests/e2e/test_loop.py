"""The whole loop as real processes, real HTTP and a real Redis: every ticket is dispatched and evaluated."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.intake.app import IntakeSettings
from shared import contract, streams
from shared.bus import redis_client
from tools.demo import make_calls, post_calls, wait_dispatched
from tools.runner import SERVICES, Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    with Stack(redis_url=redis_url, log_dir=tmp_path / "logs") as running:
        yield running


async def test_every_posted_ticket_is_dispatched_and_evaluated(stack: Stack) -> None:
    calls = make_calls(120, seed=7)
    secret = IntakeSettings().webhook_secrets[0]
    tickets = await post_calls(stack.url_of("intake"), secret, calls)
    assert len(tickets) == 120
    assert stack.redis_url is not None
    outcome = await wait_dispatched(stack.redis_url, list(tickets.values()), wait_seconds=60)
    assert outcome.missing == []
    assert {t.status for t in outcome.tickets} == {"dispatched"}
    assert all(t.department and t.category and t.feedback_due_at for t in outcome.tickets)

    async with httpx.AsyncClient() as client:
        for service in SERVICES:
            assert (await client.get(f"{stack.url_of(service)}/livez")).status_code == 200
        metrics = (await client.get(f"{stack.url_of('dispatch')}/metrics")).text
    assert (
        'hotline_events_processed_total{outcome="ok",service="dispatch",stream="tickets.classified"} 120.0'
        in metrics
    )
    assert await reviewed(stack.url_of("urgency-review"), 120, wait_seconds=120)
    await assert_redis_holds_only_what_the_contract_declares(stack.redis_url)


async def reviewed(url: str, count: int, wait_seconds: float) -> bool:
    """Whether the urgency reviewer saw `count` tickets (raised, kept or skipped) within the wait: it runs
    behind the loop, at a low priority."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{url}/metrics")).text
            seen = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("hotline_urgency_review_tickets_total{")
            )
            if seen >= count or asyncio.get_running_loop().time() > deadline:
                return seen == count
            await asyncio.sleep(0.5)


# Redis's TYPE reply for each declared kind of key.
_REDIS_TYPE = {
    contract.KeyType.HASH: "hash",
    contract.KeyType.ZSET: "zset",
    contract.KeyType.SET: "set",
    contract.KeyType.LIST: "list",
    contract.KeyType.STRING: "string",
    contract.KeyType.STREAM: "stream",
}


async def assert_redis_holds_only_what_the_contract_declares(redis_url: str) -> None:
    """Writes that bypass the store (Lua scripts, pipelines) are checked nowhere else: after a whole
    loop every key in Redis is a stream shared/streams.py names or falls under a contract declaration
    of its type, and every ticket field is declared."""
    named_streams = {
        *streams.ALL_STREAMS,
        *(streams.dlq(s) for s in streams.ALL_STREAMS),
        streams.OUTBOUND_DLQ,
        streams.RECORDER_DLQ,
    }
    redis = redis_client(redis_url)
    try:
        undeclared: list[str] = []
        wrong_type: list[str] = []
        fields: set[str] = set()
        async for raw in redis.scan_iter(count=1000):
            name = raw.decode()
            if name in named_streams:
                continue
            declared = contract.key_of(name)
            if declared is None:
                undeclared.append(name)
                continue
            kind = (await redis.type(name)).decode()
            if kind != _REDIS_TYPE[declared.type]:
                wrong_type.append(f"{name}: {kind}, declared {declared.type} ({declared.pattern})")
            if declared is contract.TICKET:
                fields.update(f.decode() for f in await redis.hkeys(name))
        assert sorted(undeclared) == [], "keys shared/contract.py does not declare"
        assert wrong_type == []
        assert fields and sorted(fields - set(contract.FIELDS)) == [], "ticket fields not declared"
    finally:
        await redis.aclose()


async def test_sigterm_stops_each_service_cleanly_and_no_caller_number_is_logged(stack: Stack) -> None:
    calls = make_calls(20, seed=3)
    tickets = await post_calls(stack.url_of("intake"), IntakeSettings().webhook_secrets[0], calls)
    assert stack.redis_url is not None
    assert (await wait_dispatched(stack.redis_url, list(tickets.values()), wait_seconds=60)).missing == []
    for service in list(stack.processes):
        code = stack.stop_service(service, sig=signal.SIGTERM, timeout=30)
        # uvicorn re-raises the signal after a graceful shutdown, so the exit is "terminated by SIGTERM".
        assert code in (0, -signal.SIGTERM), f"{service} exited {code}"
    assert stack.log_dir is not None
    logs = "".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    assert "shut down gracefully" in logs
    for call in calls:
        assert call["caller"].lstrip("+") not in logs
    assert "Traceback" not in logs
