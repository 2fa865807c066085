"""The supervision office's routes: the problems insight found (with their verdicts), and a proactive work
order for one (未诉先办).

The work order is a ticket of channel `proactive` opened through the same accept script as a citizen's
call, so it is classified, dispatched and followed with the same deadlines, rejections and escalation.
Intake records the action for insight (which alone writes problems) and announces it on
problems.actioned, once per problem and round.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.insight.plan_data import PLAN
from services.insight.problem_store import load_problem, load_problems, request_action
from services.insight.problems import Problem
from services.intake.deps import Deps
from services.intake.http import (
    HttpError,
    available,
    bearer,
    instrumented,
    parse_json,
    read_body,
    require_content_type,
)
from services.intake.openapi import Operation, Param
from shared.events import utcnow
from shared.pii import MaskedText

LIST_PATH = "/v1/supervisors/problems"
ONE_PATH = "/v1/supervisors/problems/{problem_id}"
ACT_PATH = "/v1/supervisors/problems/{problem_id}/act"
PLAN_PATH = "/v1/supervisors/plan"
STATUSES = ("open", "actioned", "resolved", "evaluated", "reopened")


class ActRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    note: MaskedText | None = Field(default=None, max_length=1000, description="why, for the record")


class WorkOrder(BaseModel):
    problem_id: str
    proactive_ticket_id: str
    round: int
    duplicate: bool


class ProblemList(BaseModel):
    problems: list[dict[str, Any]]


OPERATIONS = [
    Operation(
        "get",
        LIST_PATH,
        "Problems (a place and topic, or a surging series) with their status and evaluation, newest first",
        "supervisors",
        ok=200,
        answer=ProblemList,
        params=(Param("status", "query", f"only problems in this status: {', '.join(STATUSES)}", False),),
        errors=(400, 401),
        security="supervisor",
    ),
    Operation(
        "get",
        ONE_PATH,
        "One problem: its member tickets, evidence, work order and evaluations",
        "supervisors",
        ok=200,
        params=(Param("problem_id", "path", "the problem"),),
        errors=(401, 404),
        security="supervisor",
    ),
    Operation(
        "post",
        ACT_PATH,
        "Open a proactive work order for the problem (a retry, or a second supervisor, gets the same one)",
        "supervisors",
        ok=202,
        body=ActRequest,
        answer=WorkOrder,
        params=(Param("problem_id", "path", "the problem"),),
        errors=(401, 404, 409, 415, 422, 429),
        security="supervisor",
    ),
    Operation(
        "get",
        PLAN_PATH,
        "The week's plan (made hourly by insight): agents per hour, departments' load vs capacity",
        "supervisors",
        ok=200,
        errors=(401, 404),
        security="supervisor",
    ),
]


def summary(p: Problem) -> dict[str, Any]:
    data = p.model_dump(mode="json", exclude={"daily", "returned", "ticket_ids"})
    data["recent_tickets"] = p.ticket_ids[-10:]
    return data


def routes(deps: Deps) -> list[Route]:
    def supervisor(request: Request) -> str:
        name = deps.supervisor_tokens.identify(bearer(request))
        if name is None:
            raise HttpError(401, "bad_credentials", "a supervisor bearer token is required")
        return name

    async def listing(request: Request) -> Response:
        supervisor(request)
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise HttpError(400, "bad_query", f"status must be one of {', '.join(STATUSES)}")
        found = await available(load_problems(deps.redis))
        chosen = [p for p in found.values() if status is None or p.status == status]
        chosen.sort(key=lambda p: p.last_seen, reverse=True)
        return JSONResponse({"problems": [summary(p) for p in chosen]})

    async def one(request: Request) -> Response:
        supervisor(request)
        problem = await available(load_problem(deps.redis, request.path_params["problem_id"]))
        if problem is None:
            raise HttpError(404, "unknown_problem", f"no problem {request.path_params['problem_id']}")
        return JSONResponse(problem.model_dump(mode="json"))

    async def act(request: Request) -> Response:
        name = supervisor(request)
        raw = await read_body(request, deps.settings.max_body_bytes)
        body = ActRequest()
        if raw:  # the body is optional: a note for the record
            require_content_type(request, "application/json")
            body = parse_json(ActRequest, raw)
        await deps.limit("operator", name)
        problem_id = request.path_params["problem_id"]
        problem = await available(load_problem(deps.redis, problem_id))
        if problem is None:
            raise HttpError(404, "unknown_problem", f"no problem {problem_id}")
        if problem.status == "actioned" and problem.proactive_ticket_id:
            return _order(problem, problem.proactive_ticket_id, duplicate=True)
        if not problem.open_for_action:
            raise HttpError(
                409, "not_open", f"the problem is {problem.status}: it can be acted on again once it reopens"
            )
        action, new = await available(
            request_action(
                deps.redis, problem, f"supervisor:{name}", utcnow(), deps.settings.stream_maxlen, body.note
            )
        )
        deps.metrics.events.labels("proactive", "ok" if new else "duplicate").inc()
        return _order(problem, action.ticket_id, duplicate=not new)

    async def plan(request: Request) -> Response:
        supervisor(request)
        raw = await available(deps.redis.get(PLAN))
        if raw is None:
            raise HttpError(404, "no_plan", "insight has not made a plan yet (hourly, once it has counts)")
        return Response(raw, media_type="application/json")

    return [
        Route(PLAN_PATH, instrumented("supervisor_plan", deps.metrics, plan), methods=["GET"]),
        Route(LIST_PATH, instrumented("supervisor_problems", deps.metrics, listing), methods=["GET"]),
        Route(ONE_PATH, instrumented("supervisor_problem", deps.metrics, one), methods=["GET"]),
        Route(ACT_PATH, instrumented("supervisor_act", deps.metrics, act), methods=["POST"]),
    ]


def _order(problem: Problem, ticket_id: str, *, duplicate: bool) -> JSONResponse:
    order = WorkOrder(
        problem_id=problem.problem_id, proactive_ticket_id=ticket_id, round=problem.round, duplicate=duplicate
    )
    return JSONResponse(order.model_dump(), status_code=202)
