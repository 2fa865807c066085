"""The supervision office's routes on intake: problems with their verdicts, and a proactive work order that
goes through intake's accept path, once, and that insight then applies to the problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.insight.app import Insight, InsightSettings
from services.insight.problem_pass import ProblemPass
from services.insight.problem_store import PROBLEMS, load_problem
from services.insight.problems import Problem, ProblemPolicy
from services.insight.state import count_ops, series_key
from services.intake.settings import DEV_SUPERVISOR_TOKEN
from shared import streams
from shared.codec import decode
from shared.effects import StoreWrite
from shared.events import ProblemActioned, TicketReceived
from shared.store import TicketStore, iso
from tests.integration.intake_support import dispatch_to, intake_client

pytestmark = pytest.mark.redis
T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AUTH = {"authorization": f"Bearer {DEV_SUPERVISOR_TOKEN}"}


async def seed(redis: Redis, status: str = "open") -> Problem:
    p = Problem(
        problem_id="p1",
        key="estate:魅力之城|environment",
        category="environment",
        district="A5区",
        place="estate:魅力之城",
        label="魅力之城小区油烟扰民",
        status=status,  # type: ignore[arg-type]
        first_seen=T,
        last_seen=T,
    )
    for n in range(3):
        p.attach(f"T{n}", T + timedelta(hours=n))
        fields = {"status": "dispatched" if n else "resolved", "text": "油烟", "received_at": iso(T)}
        await TicketStore(redis).apply(
            StoreWrite(ticket_id=f"T{n}", event_id=f"r{n}", fields=fields), scope="intake"
        )
    await dispatch_to(redis, "T1", "water_utility")
    await redis.hset(PROBLEMS, p.problem_id, p.model_dump_json())
    return p


async def test_a_supervisor_lists_problems_and_orders_work_on_one_once(redis: Redis, redis_url: str) -> None:
    await seed(redis)
    async with intake_client(redis_url) as client:
        assert (await client.get("/v1/supervisors/problems")).status_code == 401
        bad = await client.get(
            "/v1/supervisors/problems", headers={"authorization": "Bearer hotline-dev-operator"}
        )
        assert bad.status_code == 401, "an operator is not a supervisor"
        assert (await client.get("/v1/supervisors/problems?status=nope", headers=AUTH)).status_code == 400
        listed = (await client.get("/v1/supervisors/problems?status=open", headers=AUTH)).json()["problems"]
        assert [p["problem_id"] for p in listed] == ["p1"] and listed[0]["tickets"] == 3
        assert (await client.get("/v1/supervisors/problems?status=evaluated", headers=AUTH)).json() == {
            "problems": []
        }
        assert (await client.get("/v1/supervisors/problems/nope", headers=AUTH)).status_code == 404
        assert (await client.post("/v1/supervisors/problems/nope/act", headers=AUTH)).status_code == 404

        first = await client.post(
            "/v1/supervisors/problems/p1/act", headers=AUTH, json={"note": "send the inspectors this week"}
        )
        again = await client.post("/v1/supervisors/problems/p1/act", headers=AUTH)
    assert first.status_code == again.status_code == 202
    order = first.json()["proactive_ticket_id"]
    assert first.json()["duplicate"] is False and again.json() == {**first.json(), "duplicate": True}
    received = [decode(f, TicketReceived) for _, f in await redis.xrange(streams.RECEIVED)]
    assert [e.ticket_id for e in received] == [order] and received[0].channel == "proactive"
    [actioned] = [decode(f, ProblemActioned) for _, f in await redis.xrange(streams.PROBLEMS_ACTIONED)]
    assert actioned.by == "supervisor:dev-supervisor" and actioned.proactive_ticket_id == order
    store = TicketStore(redis)
    assert getattr(await store.get_or_raise("T1"), "proactive_ticket_id", None) == order
    async with intake_client(redis_url) as client:
        queue = await client.get(
            "/v1/departments/water_utility/tickets",
            headers={"authorization": "Bearer hotline-dev-water_utility"},
        )
    [queued] = queue.json()["tickets"]
    assert queued["ticket_id"] == "T1" and queued["proactive_ticket_id"] == order, (
        "the department sees the order"
    )
    assert queued["problem_id"] == "p1"
    assert getattr(await store.get_or_raise("T0"), "proactive_ticket_id", None) is None, (
        "resolved: not linked"
    )

    # Insight (which alone writes problems) applies the action on its next pass.
    await ProblemPass(redis, ProblemPolicy(), 10_000, 24).run(
        T + timedelta(days=1), [], [], evaluate_now=False
    )
    problem = await load_problem(redis, "p1")
    assert problem is not None and problem.status == "actioned" and problem.proactive_ticket_id == order
    assert problem.actioned_by == "supervisor:dev-supervisor"
    async with intake_client(redis_url) as client:
        later = await client.post("/v1/supervisors/problems/p1/act", headers=AUTH)
        shown = (await client.get("/v1/supervisors/problems/p1", headers=AUTH)).json()
    assert later.status_code == 202 and later.json()["duplicate"] is True
    assert shown["status"] == "actioned" and shown["ticket_ids"] == ["T0", "T1", "T2"]


async def test_an_evaluated_problem_cannot_be_acted_on_until_it_reopens(redis: Redis, redis_url: str) -> None:
    await seed(redis, status="evaluated")
    async with intake_client(redis_url) as client:
        refused = await client.post("/v1/supervisors/problems/p1/act", headers=AUTH)
        bad = await client.post(
            "/v1/supervisors/problems/p1/act", headers={**AUTH, "content-type": "text/plain"}, content=b"x"
        )
    assert refused.status_code == 409 and "reopens" in refused.json()["error"]["message"]
    assert bad.status_code == 415
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_supervisors_read_the_plan_insight_makes(redis: Redis, redis_url: str) -> None:
    async with intake_client(redis_url) as client:
        missing = await client.get("/v1/supervisors/plan", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_plan"
        async with redis.pipeline(transaction=False) as pipe:
            for day in range(1, 22):
                for n in range(40):
                    at = T - timedelta(days=day) + timedelta(hours=1)
                    for op in count_ops(series_key("utilities", "D1"), at, f"w{day}-{n}"):
                        for command in op.commands():
                            pipe.execute_command(*command)
            await pipe.execute()
        await Insight(InsightSettings(redis_url=redis_url), redis, CollectorRegistry()).update_plan(T)
        assert (await client.get("/v1/supervisors/plan")).status_code == 401
        plan = (await client.get("/v1/supervisors/plan", headers=AUTH)).json()
    assert plan["first_day"] == "2026-11-02" and len(plan["hours"]) == 7 * 24
    assert plan["targets"]["handle_seconds"] == 300 and plan["targets"]["handle_seconds_source"].startswith(
        "default"
    )
    busy = [h for h in plan["hours"] if h["calls"] > 0]
    assert busy and all(h["start"].endswith("T18:00:00+08:00") for h in busy)  # 10:00 UTC
    assert all(h["agents_erlang_c"] >= h["agents_erlang_a"] > 0 for h in busy)
    water = [d for d in plan["departments"] if d["department"] == "water_utility"]
    assert len(water) == 7 and sum(d["expected"] for d in water) == pytest.approx(280, rel=0.1)
