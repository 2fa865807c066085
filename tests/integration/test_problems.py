"""Problems through insight's background pass on a real Redis: detected, a proactive work order opened on
intake's path with its members linked, resolved, evaluated, and the events of each step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.insight import problem_pass, problem_store
from services.insight.app import Insight, InsightSettings
from services.insight.chronic import Candidate
from services.insight.problem_pass import ProblemPass
from services.insight.problem_store import load_problems
from services.insight.problems import ProblemPolicy
from shared import contract, streams
from shared.codec import decode
from shared.effects import StoreWrite
from shared.events import ProblemActioned, ProblemDetected, ProblemEvaluated, TicketReceived
from shared.store import TicketStore, iso, keys

pytestmark = pytest.mark.redis
T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def call(redis: Redis, n: int, at: datetime, title: str = "A5区魅力之城小区底层餐馆油烟扰民") -> None:
    fields = {
        "title": title,
        "text": f"{title}，晚上十点以后还在营业",
        "district": "A5区",
        "category": "environment",
        "received_at": iso(at),
        "status": "dispatched",
        "channel": "telephony",
    }
    for scope in contract.SCOPES:  # each field by its owner, as the services write them
        mine = {k: v for k, v in fields.items() if contract.FIELDS[k].owner == scope}
        await TicketStore(redis).apply(StoreWrite(f"T{n}", f"{scope}-{n}", fields=mine), scope=scope)
    await redis.zadd(keys.by_created, {f"T{n}": at.timestamp()})


async def events(redis: Redis, stream: str, model: type) -> list:  # type: ignore[type-arg]
    return [decode(fields, model) for _, fields in await redis.xrange(stream)]


async def test_a_problem_is_found_acted_on_resolved_and_evaluated(redis: Redis, redis_url: str) -> None:
    settings = InsightSettings(
        redis_url=redis_url, proactive_repeats=5, forecast_refresh_seconds=0, problem_eval_days=7
    )
    insight = Insight(settings, redis, CollectorRegistry())
    for n in range(4):
        await call(redis, n, T + timedelta(hours=6 * n))
    await call(redis, 50, T, title="A3区润芳园小区油烟扰民")  # another estate: not this problem
    await insight.refresh(T + timedelta(days=1))
    [problem] = (await load_problems(redis)).values()
    assert problem.status == "open" and problem.place == "estate:魅力之城" and problem.tickets == 4
    [detected] = await events(redis, streams.PROBLEMS_DETECTED, ProblemDetected)
    assert detected.ticket_id == problem.problem_id and "3 tickets on estate:魅力之城" in detected.evidence

    await call(redis, 4, T + timedelta(days=1, hours=1))
    await insight.refresh(T + timedelta(days=1, hours=2))
    [problem] = (await load_problems(redis)).values()
    assert problem.status == "actioned" and problem.actioned_by == "policy:repeats>=5/7d"
    order = problem.proactive_ticket_id
    assert order is not None
    [received] = [e for e in await events(redis, streams.RECEIVED, TicketReceived) if e.ticket_id == order]
    assert received.channel == "proactive" and received.service_code == "environment"
    assert received.attributes and received.attributes["problem_id"] == [problem.problem_id]
    ticket = await TicketStore(redis).get_or_raise(order)
    assert ticket.channel == "proactive" and ticket.status == "received"
    member = await TicketStore(redis).get_or_raise("T0")
    assert getattr(member, "proactive_ticket_id", None) == order
    assert (await TicketStore(redis).history("T0"))[-1]["event"] == "linked"
    [actioned] = await events(redis, streams.PROBLEMS_ACTIONED, ProblemActioned)
    assert actioned.proactive_ticket_id == order and actioned.by == problem.actioned_by

    resolved_at = T + timedelta(days=2)
    await redis.hset(keys.ticket(order), mapping={"status": "resolved", "updated_at": iso(resolved_at)})
    await insight.refresh(T + timedelta(days=4))
    [problem] = (await load_problems(redis)).values()
    assert problem.status == "resolved" and problem.evaluation is not None
    assert problem.evaluation.verdict == "too early"

    await insight.refresh(T + timedelta(days=12))
    [problem] = (await load_problems(redis)).values()
    assert problem.status == "evaluated" and problem.evaluation is not None
    assert problem.evaluation.observed == 0 and problem.evaluation.verdict == "worked"
    [evaluated] = await events(redis, streams.PROBLEMS_EVALUATED, ProblemEvaluated)
    assert evaluated.verdict == "worked" and evaluated.avoided == problem.evaluation.avoided > 0

    # The calls come back: the problem reopens and the policy can act again, in a new round.
    for n in range(3):
        await call(redis, 60 + n, T + timedelta(days=13, hours=n))
    await insight.refresh(T + timedelta(days=13, hours=4))
    [problem] = (await load_problems(redis)).values()
    assert problem.round == 2 and problem.history[0].verdict == "worked"
    assert problem.status == "reopened", "3 calls in the week: below the policy's 5, so no new order yet"


async def test_monthly_candidates_become_problems_and_grow_as_their_window_moves(redis: Redis) -> None:
    for n in range(10):
        title = "A5区魅力之城小区底层餐馆油烟扰民" if n >= 8 else "咨询A市人才购房补贴政策"
        await call(redis, n, T + timedelta(days=7 * n), title=title)

    def candidate(label: str, ids: list[int]) -> Candidate:
        first = T + timedelta(days=7 * ids[0])
        return Candidate(
            key="cluster-7",
            label=label,
            score=1.0,
            active_weeks=len(ids),
            weeks=12,
            tickets=len(ids),
            peak_week_share=1 / len(ids),
            first=first,
            last=first,
            ticket_ids=[f"T{i}" for i in ids],
        )

    problems = ProblemPass(redis, ProblemPolicy(), 10_000, 24)
    now = T + timedelta(days=70)
    subsidy = candidate("咨询A市人才购房补贴政策", [0, 1, 2, 3, 4, 5])
    assert await problems.adopt([subsidy, candidate("魅力之城小区油烟扰民", [8, 9])], now) == 2
    # A month later the window has moved on: the same issue, two tickets fewer at the start, two more.
    assert await problems.adopt([candidate("人才购房补贴申请问题", [2, 3, 4, 5, 6, 7])], now) == 0
    found = {p.key: p for p in (await load_problems(redis)).values()}
    assert set(found) == {"chronic:T0", "estate:魅力之城|environment"}
    chronic = found["chronic:T0"]
    assert chronic.tickets == 8 and chronic.category == "environment" and chronic.place is None
    assert "每月一题 candidate" in chronic.evidence[0]
    detected = await events(redis, streams.PROBLEMS_DETECTED, ProblemDetected)
    assert sorted(e.key for e in detected) == sorted(found)


async def test_the_pass_reads_every_problem_again_only_when_another_replica_committed_since(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease holder keeps what its last commit left: its next pass reads the version, not every
    problem and tally. When another replica committed meanwhile (it held the lease), it reads them all."""
    reads: list[int] = []

    async def counted(r: Redis) -> problem_store.Known:
        known = await problem_store.load_known(r)
        reads.append(known.version)
        return known

    monkeypatch.setattr(problem_pass, "load_known", counted)
    for n in range(6):
        await call(redis, n, T + timedelta(hours=n))
    await call(redis, 9, T, title="A3区润芳园小区油烟扰民")  # another estate: a pending tally
    fields = ("text", "title", "received_at", "district", "address", "category", "channel")

    async def run(on: ProblemPass, *ns: int) -> None:
        found = await TicketStore(redis).get_many([f"T{n}" for n in ns], fields=fields)
        await on.run(T + timedelta(days=1), [t for t in found if t is not None], [], evaluate_now=False)

    holder, other = (ProblemPass(redis, ProblemPolicy(), 10_000, 24) for _ in range(2))
    await run(holder, 0, 1, 2, 9)
    await run(holder, 3)
    assert reads == [0], "the second pass used what the first committed"
    await run(other, 4)  # another replica, holding the lease for a while
    await run(holder, 5)
    assert reads == [0, 2, 3], "each read the other's commit"
    [problem] = (await load_problems(redis)).values()
    assert problem.ticket_ids == [f"T{n}" for n in range(6)], "nothing the other replica did is lost"
    pending = await redis.hgetall(problem_store.PENDING)
    assert [json.loads(v) for v in pending.values()] == [[["T9", T.timestamp()]]]
    # A problem written by something other than a pass (an operator's restore, a test): unknown to the
    # holder until a supervisor acts on it, which makes the holder read them all again.
    other_problem = problem.model_copy(update={"problem_id": "p-written", "key": "estate:润芳园|environment"})
    await redis.hset(problem_store.PROBLEMS, "p-written", other_problem.model_dump_json())
    action = problem_store.Action(problem_id="p-written", round=1, ticket_id="W1", by="sup", at=T)
    await redis.hset(problem_store.ACTIONS, "p-written", action.model_dump_json())
    await run(holder)
    assert reads == [0, 2, 3, 4] and (await load_problems(redis))["p-written"].status == "actioned"
