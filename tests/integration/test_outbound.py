"""Outbound webhooks against a real HTTP server (uvicorn on a free port) and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.dispatch import state
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.outbound import Outbound, OutboundSettings
from services.dispatch.routing import RoutingSource
from shared import streams
from shared.effects import HashSet, SortedAdd, StoreWrite
from shared.standard_webhooks import verify
from shared.store import TicketStore
from tests.support import serving, wait_for
from tools.cli import main
from tools.embedded import free_port

pytestmark = pytest.mark.redis
SECRETS = {"FAST_SECRET": "whsec_ZmFzdC1zZWNyZXQ=", "SLOW_SECRET": "slow-secret", "FLAKY_SECRET": "flaky"}


@dataclass
class Receiver:
    """A department's system: records every request; can be slow or fail the first N requests."""

    delay: dict[str, float] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        self.requests.append((name, dict(request.headers), body))
        await asyncio.sleep(self.delay.get(name, 0))
        self.finished.append(name)
        if self.fail_first.get(name, 0) > 0:
            self.fail_first[name] -= 1
            return Response("busy", status_code=503)
        return Response(status_code=self.status.get(name, 204))

    def of(self, name: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == name]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    rec = Receiver()
    port = free_port()
    async with serving(Starlette(routes=[Route("/hook/{name}", rec.hook, methods=["POST"])]), port):
        yield rec, port


def routing(tmp_path: Path, port: int, dead_port: int) -> RoutingSource:
    def dept(name: str, url: str, env: str) -> str:
        return f"  - {{id: {name}, name: {name}, webhook_url: '{url}', token_env: {env}}}\n"

    base = f"http://127.0.0.1:{port}/hook"
    text = (
        "coordinator: coord\nfallback: coord\ndepartments:\n  - {id: coord, name: Coordinator}\n"
        + dept("fast", f"{base}/fast", "FAST_SECRET")
        + dept("slow", f"{base}/slow", "SLOW_SECRET")
        + dept("flaky", f"{base}/flaky", "FLAKY_SECRET")
        + dept("gone", f"{base}/gone", "FAST_SECRET")
        + dept("down", f"http://127.0.0.1:{dead_port}/hook", "FAST_SECRET")
    )
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return RoutingSource(path, env=SECRETS)


async def enqueue(redis: Redis, department: str, event_id: str) -> None:
    """What a dispatch write does for a department with a webhook (see handlers._dispatch)."""
    job = state.OutboundJob(department=department, body=f'{{"event_id": "{event_id}"}}')
    write = StoreWrite(
        "T1",
        event_id,
        ops=[
            HashSet(state.OUTBOUND_JOBS, event_id, job.model_dump_json()),
            SortedAdd(state.OUTBOUND_DUE, event_id, 0),
        ],
    )
    await TicketStore(redis).apply(write, scope="dispatch")
    await TicketStore(redis).apply(write, scope="dispatch")  # a redelivered batch: applied once


@contextlib.asynccontextmanager
async def running(outbound: Outbound) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(outbound.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


def make(redis: Redis, source: RoutingSource, **settings: float) -> Outbound:
    opts = OutboundSettings(
        **{"timeout": 5.0, "max_attempts": 3, "backoff_base": 0.05, "backoff_cap": 0.2, "poll_interval": 0.02}
        | settings
    )
    return Outbound(redis, source, DispatchMetrics(CollectorRegistry()), opts, maxlen=10_000, env=SECRETS)


async def test_deliveries_are_signed_once_each_and_a_slow_department_blocks_no_one(
    redis: Redis, receiver: tuple[Receiver, int], tmp_path: Path
) -> None:
    rec, port = receiver
    rec.delay["slow"] = 1.5
    outbound = make(redis, routing(tmp_path, port, free_port()))
    await enqueue(redis, "slow", "e-slow")
    async with running(outbound):
        await wait_for(lambda: rec.of("slow"), "the slow call in flight")  # the slow call is in flight...
        await enqueue(redis, "fast", "e-fast")
        await wait_for(lambda: "fast" in rec.finished, "the fast delivery")
        assert "slow" not in rec.finished, "...and the fast department was served meanwhile"
        await wait_for(lambda: "slow" in rec.finished, "the slow delivery")
        await wait_for(lambda: _nothing_due(redis), "no delivery due")
    [(_, headers, body)] = rec.of("fast")
    assert headers["webhook-id"] == "e-fast"
    assert verify([SECRETS["FAST_SECRET"]], headers, body) == "e-fast"
    assert verify([SECRETS["SLOW_SECRET"]], rec.of("slow")[0][1], rec.of("slow")[0][2]) == "e-slow"
    assert await redis.exists(state.outbound_sent("e-fast"))
    assert await redis.hlen(state.OUTBOUND_JOBS) == 0
    assert len(rec.requests) == 2


async def test_a_failing_department_is_retried_with_the_same_id_until_it_answers(
    redis: Redis, receiver: tuple[Receiver, int], tmp_path: Path
) -> None:
    rec, port = receiver
    rec.fail_first["flaky"] = 2
    outbound = make(redis, routing(tmp_path, port, free_port()))
    await enqueue(redis, "flaky", "e-1")
    async with running(outbound):
        await wait_for(lambda: len(rec.of("flaky")) == 3, "three tries")
        await wait_for(lambda: _nothing_due(redis), "no delivery due")
    assert {r[1]["webhook-id"] for r in rec.of("flaky")} == {"e-1"}
    assert await redis.exists(state.outbound_sent("e-1"))
    assert await redis.xlen(streams.OUTBOUND_DLQ) == 0
    m = outbound.metrics.deliveries
    assert m.labels("flaky", "retry")._value.get() == 2 and m.labels("flaky", "delivered")._value.get() == 1


async def run_until_settled(
    redis: Redis, receiver: tuple[Receiver, int], tmp_path: Path, *departments: str
) -> Outbound:
    """Deliver one event (`e-<department>`) to each department, with `gone` refusing (410) and `down`
    unreachable, until every delivery is done or dead-lettered."""
    rec, port = receiver
    rec.status["gone"] = 410
    outbound = make(redis, routing(tmp_path, port, free_port()))
    for department in departments:
        await enqueue(redis, department, f"e-{department}")
    async with running(outbound):
        await wait_for(lambda: _nothing_due(redis), "no delivery due")
    return outbound


async def test_after_the_last_try_or_a_refusal_the_delivery_is_dead_lettered_with_the_reason(
    redis: Redis, receiver: tuple[Receiver, int], tmp_path: Path
) -> None:
    rec, _ = receiver
    await run_until_settled(redis, receiver, tmp_path, "down", "gone")
    dead = {f[b"event_id"]: f for _, f in await redis.xrange(streams.OUTBOUND_DLQ)}
    assert dead[b"e-down"][b"reason"] == b"unreachable" and dead[b"e-down"][b"attempts"] == b"3"
    assert dead[b"e-gone"][b"reason"] == b"refused" and b"HTTP 410" in dead[b"e-gone"][b"error"]
    assert dead[b"e-gone"][b"attempts"] == b"0" and len(rec.of("gone")) == 1, "a refusal is not retried"
    assert dead[b"e-down"][b"body"] == b'{"event_id": "e-down"}'
    assert await redis.zcard(state.OUTBOUND_DUE) == 0 and await redis.hlen(state.OUTBOUND_JOBS) == 0


async def _nothing_due(redis: Redis) -> bool:
    return int(await redis.zcard(state.OUTBOUND_DUE)) == 0


async def test_operators_list_dead_deliveries_and_queue_them_again_once_the_department_is_back(
    redis: Redis,
    redis_url: str,
    receiver: tuple[Receiver, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec, _ = receiver
    outbound = await run_until_settled(redis, receiver, tmp_path, "gone", "fast")
    monkeypatch.setenv("REDIS_URL", redis_url)

    assert await asyncio.to_thread(main, ["outbound", "list", "--json"]) == 0
    [dead] = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (dead["event_id"], dead["department"], dead["reason"]) == ("e-gone", "gone", "refused")
    assert await asyncio.to_thread(main, ["dlq", "list"]) == 0
    assert "1 undelivered department webhook(s)" in capsys.readouterr().out

    rec.status["gone"] = 204  # the department's system is fixed
    assert await asyncio.to_thread(main, ["outbound", "replay", "--id", dead["dlq_id"]]) == 0
    assert "queued 1 webhook(s) again" in capsys.readouterr().out
    # The same id again (or a mistyped one) is nothing to replay: said on stderr, exit 1, not silence.
    assert await asyncio.to_thread(main, ["outbound", "replay", "--id", dead["dlq_id"], "--id", "1-0"]) == 1
    assert "2 of the 2 given id(s) are not undelivered webhooks" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["dlq", "replay", "--stream", streams.RECEIVED, "--id", "1-0"]) == 1
    assert "1 of the 1 given id(s) are not dead letters of tickets.received" in capsys.readouterr().err
    assert await redis.xlen(streams.OUTBOUND_DLQ) == 0
    async with running(outbound):
        await wait_for(lambda: _nothing_due(redis), "no delivery due")
    assert await redis.exists(state.outbound_sent("e-gone"))
    assert [r[1]["webhook-id"] for r in rec.of("gone")] == ["e-gone", "e-gone"]
    assert await redis.hlen(state.OUTBOUND_JOBS) == 0
