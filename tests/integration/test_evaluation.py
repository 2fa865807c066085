"""Evaluation's loops through a real Redis, a real local survey gateway (HTTP) and intake's survey route.

The evaluation worker runs in-process under uvicorn (its consumers, survey loop, gauges and JSON API);
dispatch is not merged here, so the tests publish what dispatch and departments would (TicketDispatched
from dispatch's own handler, TicketUpdated accept/resolve).
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.dispatch.handlers import on_classified
from services.dispatch.routing import load_routing
from services.dispatch.state import Snapshot
from services.evaluation.api import api_routes
from services.evaluation.app import EvaluationSettings, build
from services.evaluation.handlers import Policy, on_answered, on_dispatched, on_updated
from services.evaluation.rates import assess, load_table
from services.evaluation.state import load_states
from services.evaluation.surveys import SurveyConfig, SurveyDesk, SurveyMetrics
from services.intake.app import IntakeSettings, create_app
from shared import streams
from shared.bus import redis_client
from shared.codec import decode, pack
from shared.effects import Effects
from shared.events import (
    SurveyAnswered,
    TicketDispatched,
    TicketReopened,
    TicketUpdated,
    utcnow,
)
from shared.outbound import OutboundSender, RetryPolicy
from shared.settings import CommonSettings
from shared.standard_webhooks import signed_headers, verify
from shared.store import TicketStore, keys
from tests.integration.intake_support import NUMBER, SECRET, classified_utilities, new_ticket, post_signed
from tests.support import serving, wait_for
from tools.cli import main
from tools.embedded import free_port

pytestmark = pytest.mark.redis

INTAKE_SECRET = SECRET
SURVEY_SECRET = "whsec_c3VydmV5LXNlY3JldA=="
CALLER = NUMBER
ROUTING = load_routing(CommonSettings().routing_path)
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.05, timeout=5)
POLICY = Policy(tz=ZoneInfo("Asia/Shanghai"), survey_delay=timedelta(0))


# -- a real local gateway -------------------------------------------------------------------------------


@dataclass
class Gateway:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    port = free_port()
    gw = Gateway(url=f"http://127.0.0.1:{port}/surveys")

    async def receive(request: Request) -> Response:
        gw.requests.append((dict(request.headers), await request.body()))
        status = gw.statuses.pop(0) if gw.statuses else 200
        return JSONResponse({"ok": status < 300}, status_code=status)

    async with serving(Starlette(routes=[Route("/surveys", receive, methods=["POST"])]), port):
        yield gw


# -- the rest of the system, as far as evaluation sees it ------------------------------------------------


@pytest.fixture
async def intake(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        IntakeSettings(
            redis_url=redis_url, webhook_secrets=[INTAKE_SECRET], survey_webhook_secrets=[INTAKE_SECRET]
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as c:
        yield c
    await app.state.redis.aclose()


async def signed_post(
    client: httpx.AsyncClient, path: str, data: dict[str, Any], webhook_id: str
) -> httpx.Response:
    return await post_signed(client, path, json.dumps(data, ensure_ascii=False).encode(), webhook_id)


async def commit(redis: Redis, effects: Effects, scope: str) -> None:
    """What a worker's commit does with a handler's effects."""
    store = TicketStore(redis)
    for write in effects.writes:
        await store.apply(write, scope=scope)
    for out in effects.publish:
        await redis.xadd(out.stream, {"__data__": pack(out.event)})


async def dispatch_ticket(redis: Redis, ticket_id: str, attempt: str = "1") -> str:
    """Dispatch's own handler on a classified utilities ticket in district A3区; returns the department."""
    now = utcnow()
    classified = classified_utilities(
        ticket_id, now, f"classified-{ticket_id}-{attempt}", "A3区", "utilities"
    )
    effects = on_classified(classified, table=ROUTING, supply=Snapshot({}, {}), now=now, previous=None)
    await commit(redis, effects, "dispatch")
    return str(effects.writes[0].fields["department"])


async def department_acts(redis: Redis, ticket_id: str, department: str, action: str, n: int = 1) -> None:
    event = TicketUpdated(
        event_id=f"{ticket_id}-{action}-{n}",
        ticket_id=ticket_id,
        occurred_at=utcnow(),
        department=department,
        action=action,  # type: ignore[arg-type]
    )
    await redis.xadd(streams.UPDATED, {"__data__": pack(event)})


async def answer(intake: httpx.AsyncClient, ticket_id: str, **data: Any) -> httpx.Response:
    return await signed_post(
        intake,
        "/v1/webhooks/survey",
        {"ticket_id": ticket_id, **data},
        f"answer-{ticket_id}-{time.time_ns()}",
    )


@dataclass
class Evaluation:
    url: str
    http: httpx.AsyncClient

    async def rates(self, unit: str = "department", **params: str) -> dict[str, Any]:
        resp = await self.http.get(f"{self.url}/v1/rates", params={"unit": unit, **params})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def unit(self, name: str, unit: str = "department") -> dict[str, Any]:
        return next(u for u in (await self.rates(unit))["units"] if u["unit"] == name)


@pytest.fixture
async def evaluation(redis: Redis, redis_url: str, gateway: Gateway) -> AsyncIterator[Evaluation]:
    port = free_port()
    settings = EvaluationSettings(
        redis_url=redis_url,
        port=port,
        consumer_name=f"eval-test-{port}",
        survey_delay_seconds=0,
        survey_gateway_url=gateway.url,
        survey_secret=SURVEY_SECRET,
        survey_retry=FAST_RETRY,
        survey_poll_seconds=0.05,
        gauges_refresh_seconds=0.1,
        min_volume=1,
    )
    worker, app = build(settings)
    async with serving(app, port), httpx.AsyncClient(timeout=10) as http:
        yield Evaluation(f"http://127.0.0.1:{port}", http)
    await worker.redis.aclose()


async def reopened_events(redis: Redis) -> list[TicketReopened]:
    return [decode(f, TicketReopened) for _, f in await redis.xrange(streams.REOPENED)]


# -- the loops ------------------------------------------------------------------------------------------


async def test_resolve_survey_answer_and_the_rates_change_as_defined(
    redis: Redis, intake: httpx.AsyncClient, gateway: Gateway, evaluation: Evaluation
) -> None:
    ticket = await new_ticket(intake, "call-ok")
    department = await dispatch_ticket(redis, ticket)
    assert department == "water_utility"
    await wait_for(lambda: _dispatched(evaluation, department), "the dispatch counted")
    await department_acts(redis, ticket, department, "accept")
    await department_acts(redis, ticket, department, "resolve")

    [sent] = await wait_for(lambda: _true(gateway.bodies()), "the survey at the gateway")
    headers, body = gateway.requests[0]
    assert verify([SURVEY_SECRET], headers, body) == sent["survey_id"]
    assert (sent["ticket_id"], sent["survey_round"], sent["department"]) == (ticket, 1, department)
    assert CALLER.lstrip("+") not in body.decode()

    before = await evaluation.unit(department)
    assert before["rates"]["response"]["raw"] == 1.0 and before["rates"]["resolution"]["raw"] is None

    resp = await answer(intake, ticket, resolved=True, satisfaction="满意", comment="很快修好了")
    assert resp.status_code == 202 and resp.json() == {
        "ticket_id": ticket,
        "survey_round": 1,
        "duplicate": False,
    }

    async def evaluated() -> dict[str, Any] | None:
        unit = await evaluation.unit(department)
        return unit if unit["counts"]["evaluated"] == 1 else None

    after = await wait_for(evaluated, "the answer counted")
    assert {r: after["rates"][r]["raw"] for r in ("response", "resolution", "satisfaction")} == {
        "response": 1.0,
        "resolution": 1.0,
        "satisfaction": 1.0,
    }
    assert after["counts"]["surveyed"] == 1 and after["counts"]["reopened"] == 0
    assert (await evaluation.unit("A3区", "district"))["counts"]["evaluated"] == 1
    assert (await evaluation.unit("utilities", "category"))["counts"]["satisfied"] == 1
    assert (await load_states(redis, [ticket]))[ticket].eval_survey_status == "answered"

    again = await answer(intake, ticket, resolved=False, satisfaction=1)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 1

    series = (
        'hotline_evaluation_department_rate{department="water_utility",kind="raw",'
        'rate="satisfaction",window="month"} 1.0'
    )

    async def scraped() -> str | None:
        text = (await evaluation.http.get(f"{evaluation.url}/metrics")).text
        return text if series in text else None

    metrics = await wait_for(scraped, "the gauge")
    assert ticket not in metrics
    assert 'hotline_evaluation_surveys_total{outcome="sent"} 1.0' in metrics


async def _dispatched(evaluation: Evaluation, department: str) -> bool:
    units = (await evaluation.rates())["units"]
    return any(u["unit"] == department and u["counts"]["dispatched"] for u in units)


async def test_dissatisfied_reopens_dispatch_again_and_a_second_reopening_means_supervision(
    redis: Redis, intake: httpx.AsyncClient, gateway: Gateway, evaluation: Evaluation
) -> None:
    ticket = await new_ticket(intake, "call-bad")
    department = await dispatch_ticket(redis, ticket)
    for survey_round in (1, 2):
        await department_acts(redis, ticket, department, "resolve", n=survey_round)
        await wait_for(
            lambda n=survey_round: _true(len(gateway.requests) == n), f"survey {survey_round} sent"
        )
        assert gateway.bodies()[-1]["survey_round"] == survey_round
        resp = await answer(
            intake, ticket, resolved=False, satisfaction="不满意", comment=f"第{survey_round}次还是漏水"
        )
        assert resp.status_code == 202 and resp.json()["survey_round"] == survey_round
        events = await wait_for(
            lambda n=survey_round: _at_least(reopened_events(redis), n), f"reopening {survey_round}"
        )
        reopened = events[-1]
        assert reopened.reopen_count == survey_round and reopened.department == department
        assert [h.survey_round for h in reopened.history] == list(range(1, survey_round + 1))
        assert (
            reopened.history[-1].comment == f"第{survey_round}次还是漏水"
            and reopened.history[-1].satisfaction == 2
        )
        if survey_round == 1:
            assert not reopened.supervision
            # Dispatch (not merged on this branch) consumes tickets.reopened and dispatches again.
            await dispatch_ticket(redis, ticket, attempt="after-reopen")
    assert reopened.supervision
    assert len({h["webhook-id"] for h, _ in gateway.requests}) == 2

    state = (await load_states(redis, [ticket]))[ticket]
    assert state.eval_supervision and state.eval_reopen_count == 2
    flagged = (await evaluation.http.get(f"{evaluation.url}/v1/supervision")).json()
    assert [t["ticket_id"] for t in flagged["tickets"]] == [ticket]

    async def counted() -> dict[str, Any] | None:
        unit = await evaluation.unit(department)
        return unit if unit["counts"]["evaluated"] == 2 and unit["counts"]["dispatched"] == 2 else None

    unit = await wait_for(counted, "both answers and both dispatches counted")
    assert unit["counts"]["reopened"] == 2
    assert unit["rates"]["resolution"]["raw"] == 0.0 and unit["rates"]["satisfaction"]["raw"] == 0.0
    history = [h["event"] for h in await TicketStore(redis).history(ticket)]
    assert history.count("survey_answered") == 2 and history.count("survey_sent") == 2


async def _at_least(events: Awaitable[list[TicketReopened]], n: int) -> list[TicketReopened] | None:
    got = await events
    return got if len(got) >= n else None


async def test_the_api_refuses_bad_parameters_clearly(evaluation: Evaluation) -> None:
    for params in ({"unit": "street"}, {"window": "year"}, {"window": "month", "bucket": "2026-13"}):
        resp = await evaluation.http.get(f"{evaluation.url}/v1/rates", params=params)
        assert (resp.status_code == 400 and "must be" in resp.text) or "is not a" in resp.text
    resp = await evaluation.http.get(f"{evaluation.url}/v1/rankings", params={"rate": "speed"})
    assert resp.status_code == 400
    empty = await evaluation.http.get(f"{evaluation.url}/v1/rankings", params={"bucket": "2020-01"})
    assert empty.json()["ranked"] == [] and empty.json()["bucket"] == "2020-01"


# -- the survey desk on its own: retries, giving up, expiry, several replicas ------------------------------


@asynccontextmanager
async def desk(redis: Redis, gateway: Gateway | None, **config: Any) -> AsyncIterator[SurveyDesk]:
    async with httpx.AsyncClient() as http:
        yield SurveyDesk(
            redis,
            SurveyConfig(
                gateway_url=gateway.url if gateway else None,
                window=config.pop("window", timedelta(days=3)),
                lease=config.pop("lease", timedelta(minutes=5)),
                **config,
            ),
            POLICY,
            OutboundSender(http, SURVEY_SECRET, FAST_RETRY),
            SurveyMetrics(CollectorRegistry()),
        )


async def resolved_ticket(redis: Redis, intake: httpx.AsyncClient, call_id: str) -> str:
    """A dispatched ticket resolved by its department, as evaluation's handler records it."""
    ticket = await new_ticket(intake, call_id)
    department = await dispatch_ticket(redis, ticket)
    state = (await load_states(redis, [ticket]))[ticket]
    resolve = TicketUpdated(
        event_id=f"{ticket}-resolve",
        ticket_id=ticket,
        occurred_at=utcnow(),
        department=department,
        action="resolve",
    )
    await commit(redis, on_updated(resolve, state, POLICY), "evaluation")
    return ticket


async def month_counts(redis: Redis) -> dict[str, int]:
    raw = await redis.hgetall(keys.rates("month", datetime.now(POLICY.tz).strftime("%Y-%m")))
    out: dict[str, int] = {}
    for k, v in raw.items():
        if k.startswith(b"department|"):
            out[k.decode().rsplit("|", 1)[1]] = int(v)
    return out


async def test_a_failing_gateway_is_retried_with_the_same_id_until_it_takes_the_survey(
    redis: Redis, intake: httpx.AsyncClient, gateway: Gateway
) -> None:
    ticket = await resolved_ticket(redis, intake, "retry")
    gateway.statuses = [503, 500]
    async with desk(redis, gateway) as d:
        assert await d.send_due() == 1
    assert len(gateway.requests) == 3
    assert len({h["webhook-id"] for h, _ in gateway.requests}) == 1
    assert all(verify([SURVEY_SECRET], h, b) for h, b in gateway.requests)
    fields = await redis.hgetall(keys.ticket(ticket))
    assert fields[b"eval_survey_delivery"] == b"sent"
    assert await redis.zscore(keys.surveys_open, f"{ticket}|1") is not None
    assert await redis.zcard(keys.surveys_due) == 0
    assert (await month_counts(redis)).get("surveyed") == 1


@pytest.mark.parametrize(("statuses", "tries"), [([503, 503, 503], 3), ([400], 1)])
async def test_after_the_last_try_or_a_refusal_the_survey_is_recorded_undelivered(
    redis: Redis, intake: httpx.AsyncClient, gateway: Gateway, statuses: list[int], tries: int
) -> None:
    ticket = await resolved_ticket(redis, intake, f"fail-{tries}")
    gateway.statuses = statuses
    async with desk(redis, gateway) as d:
        await d.send_due()
    assert len(gateway.requests) == tries
    fields = await redis.hgetall(keys.ticket(ticket))
    assert fields[b"eval_survey_delivery"] == b"undelivered"
    assert (await month_counts(redis)).get("undelivered") == 1
    assert await redis.zcard(keys.surveys_due) == 0  # moved on, not retried forever


async def test_an_unanswered_survey_becomes_not_evaluated_and_then_refuses_answers(
    redis: Redis, intake: httpx.AsyncClient, gateway: Gateway
) -> None:
    quiet = await resolved_ticket(redis, intake, "quiet")
    talkative = await resolved_ticket(redis, intake, "talkative")
    async with desk(redis, gateway, window=timedelta(0)) as d:
        assert await d.send_due() == 2
        assert (await answer(intake, talkative, resolved=True, satisfaction=4)).status_code == 202
        assert await d.expire_due() == 2
    assert (await redis.hgetall(keys.ticket(quiet)))[b"eval_survey_status"] == b"expired"
    assert (await month_counts(redis)).get("unevaluated") == 1  # the answered one is not counted here
    late = await answer(intake, quiet, resolved=True, satisfaction=5)
    assert late.status_code == 409 and late.json()["error"]["code"] == "survey_closed"
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 1
    assert await redis.zcard(keys.surveys_open) == 0


async def test_without_a_gateway_surveys_are_logged_left_open_for_a_callback_and_counted_when_answered(
    redis: Redis, intake: httpx.AsyncClient
) -> None:
    ticket = await resolved_ticket(redis, intake, "no-gateway")
    async with desk(redis, None) as d:
        assert await d.send_due() == 1
    assert (await redis.hgetall(keys.ticket(ticket)))[b"eval_survey_delivery"] == b"unsent"
    assert await redis.zscore(keys.surveys_open, f"{ticket}|1") is not None
    assert (await answer(intake, ticket, resolved=True, satisfaction=5)).status_code == 202


async def test_replicas_never_send_one_survey_twice_and_a_dead_ones_claims_return(
    redis: Redis, intake: httpx.AsyncClient, gateway: Gateway
) -> None:
    tickets = [await resolved_ticket(redis, intake, f"many-{i}") for i in range(12)]
    async with desk(redis, gateway, batch=5) as a, desk(redis, gateway, batch=5) as b:
        # A replica that claims and dies before sending: its claims come back after the lease.
        async with desk(redis, gateway, batch=3) as doomed:
            lost = await doomed.claim(keys.surveys_due)
        assert len(lost) == 3
        while await a.send_due() + await b.send_due():
            pass
        assert len(gateway.requests) == 9
        # Past the dead replica's lease by the clock, not by a sleep a busy machine can outlast.
        after_lease = time.time() + doomed.config.lease.total_seconds() + 1
        a.clock = b.clock = lambda: after_lease
        await asyncio.gather(a.send_due(), b.send_due())
    ids = [h["webhook-id"] for h, _ in gateway.requests]
    assert len(ids) == len(set(ids)) == 12
    assert {body["ticket_id"] for body in gateway.bodies()} == set(tickets)


# -- intake's survey route ------------------------------------------------------------------------------


async def test_the_survey_route_refuses_bad_answers_precisely(
    redis: Redis, intake: httpx.AsyncClient
) -> None:
    unresolved = await new_ticket(intake, "unresolved")
    resolved = await resolved_ticket(redis, intake, "resolved")
    cases = [
        (await answer(intake, "T-NOPE", resolved=True, satisfaction=5), 404, "unknown_ticket"),
        (await answer(intake, unresolved, resolved=True, satisfaction=5), 409, "no_survey"),
        (await answer(intake, resolved, resolved=True, satisfaction="很好"), 422, "invalid_payload"),
        (await answer(intake, resolved, resolved=True), 422, "invalid_payload"),
    ]
    body = json.dumps({"ticket_id": resolved, "resolved": True, "satisfaction": 5}).encode()
    forged = await intake.post(
        "/v1/webhooks/survey",
        content=body,
        headers={**signed_headers("whsec_d3Jvbmc=", "x", body), "content-type": "application/json"},
    )
    cases.append((forged, 401, "bad_signature"))
    for resp, status, code in cases:
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 0


async def test_the_survey_route_answers_503_when_redis_is_down() -> None:
    app = create_app(
        IntakeSettings(
            redis_url="redis://127.0.0.1:1/0",
            webhook_secrets=[INTAKE_SECRET],
            survey_webhook_secrets=[INTAKE_SECRET],
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as c:
        resp = await answer(c, "T1", resolved=True, satisfaction=5)
    await app.state.redis.aclose()
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"


async def test_the_rates_api_answers_503_not_500_when_redis_is_down() -> None:
    redis = redis_client("redis://127.0.0.1:1/0")
    try:
        for path, route in api_routes(redis, ZoneInfo("Asia/Shanghai"), min_volume=1):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url="http://e") as c:
                resp = await c.get(path)
            assert resp.status_code == 503, (path, resp.status_code, resp.text)
            assert resp.headers["retry-after"] == "5" and resp.json()["error"]["code"] == "unavailable"
    finally:
        await redis.aclose()


# -- the monthly report ---------------------------------------------------------------------------------


async def test_the_report_writes_html_with_charts_and_a_csv_of_the_same_numbers(
    redis: Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tz = POLICY.tz
    # Three weeks of November: two departments, the harder category all at one of them.
    for i in range(60):
        at = datetime(2026, 11, 1 + i % 21, 10, tzinfo=tz).astimezone(UTC)
        department, category = (
            ("water_utility", "utilities") if i % 3 else ("urban_management", "environment")
        )
        ticket = f"R{i:03d}"
        d = TicketDispatched(
            event_id=f"d{i}",
            ticket_id=ticket,
            occurred_at=at,
            department=department,
            category=category,
            district=f"A{i % 4}区",
            urgency="general",
            dispatch_due_at=at + timedelta(hours=24),
            feedback_due_at=at + timedelta(days=7),
            reason="rule",
            received_at=at,
        )
        states = await load_states(redis, [ticket])
        await commit(redis, on_dispatched(d, states[ticket], POLICY), "evaluation")
        resolve = TicketUpdated(
            event_id=f"r{i}",
            ticket_id=ticket,
            occurred_at=at + timedelta(hours=i % 30),
            department=department,
            action="resolve",
        )
        states = await load_states(redis, [ticket])
        await commit(redis, on_updated(resolve, states[ticket], POLICY), "evaluation")
        a = SurveyAnswered(
            event_id=f"a{i}",
            ticket_id=ticket,
            occurred_at=at + timedelta(days=1),
            resolved=i % 5 != 0,
            satisfaction=(5, 4, 3, 2)[i % 4],
            survey_round=1,
        )
        states = await load_states(redis, [ticket])
        await commit(redis, on_answered(a, states[ticket], POLICY), "evaluation")

    # What insight stored as this month's 每月一题 candidates travels with the report.
    chronic = [
        {
            "label": "丽发新城搅拌站噪音扬尘",
            "score": 3.1,
            "active_weeks": 3,
            "weeks": 3,
            "tickets": 9,
            "first": "2026-11-02T08:00:00+00:00",
            "last": "2026-11-20T08:00:00+00:00",
            "ticket_ids": ["R001"],
        },
    ]
    await redis.set(keys.chronic("2026-11"), json.dumps(chronic, ensure_ascii=False))
    monkeypatch.setenv("REDIS_URL", redis_url)
    # The command runs its own event loop, as it does from a shell.
    assert (
        await asyncio.to_thread(
            main, ["report", "--month", "2026-11", "--out", str(tmp_path), "--min-volume", "5"]
        )
        == 0
    )
    html = (tmp_path / "sanlv-2026-11.html").read_text(encoding="utf-8")
    assert (
        html.count("<svg") >= 3
        and "<polyline" in html
        and "<script" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "water_utility" in html and "urban_management" in html and "Worst categories" in html
    assert "每月一题" in html and "丽发新城搅拌站噪音扬尘" in html
    [problem] = csv.DictReader((tmp_path / "meiyueyiti-2026-11.csv").read_text(encoding="utf-8").splitlines())
    assert (problem["rank"], problem["label"], problem["tickets"]) == ("1", "丽发新城搅拌站噪音扬尘", "9")

    rows = list(csv.DictReader((tmp_path / "sanlv-2026-11.csv").read_text(encoding="utf-8").splitlines()))
    month_units = {r["unit"]: r for r in rows if r["window"] == "month" and r["dimension"] == "department"}
    expected = {u.unit: u for u in assess(await load_table(redis, "month", "2026-11"), "department", 5)}
    assert set(month_units) == set(expected) == {"water_utility", "urban_management"}
    for unit, report in expected.items():
        for rate in ("response", "resolution", "satisfaction"):
            assert float(month_units[unit][f"{rate}_raw"]) == pytest.approx(report.rates[rate].raw)
            assert float(month_units[unit][f"{rate}_ratio"]) == pytest.approx(report.rates[rate].ratio)
    days = [r for r in rows if r["window"] == "day"]
    assert len(days) == 30 and sum(int(r["dispatched"]) for r in days) == 60
    city = next(r for r in rows if r["dimension"] == "city")
    assert int(city["evaluated"]) == 60 and int(city["resolved"]) == 48

    assert await asyncio.to_thread(main, ["report", "--month", "2026-13", "--out", str(tmp_path)]) == 2
    assert "'2026-13' is not a month" in capsys.readouterr().err
    # An --out that cannot be a directory: one line on stderr and exit 2, not an OSError traceback.
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")
    code = await asyncio.to_thread(main, ["report", "--month", "2026-11", "--out", str(blocked / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("hotline report: cannot write into") and len(err.splitlines()) == 1
