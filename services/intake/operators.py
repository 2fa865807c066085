"""Operators' corrections of what the machines decided.

- Category: the ticket's category changes and the fix is kept as a training label, in the
  `hotline:labels` stream (`keys.labels`) as flat fields {ticket_id, text, category, previous, operator,
  at}, in the same script as the ticket update; an open ticket goes back to dispatch, which routes it by
  the new category (`services/intake/actions.py`, shared with the console).
- Routing: `TicketRerouted` on tickets.rerouted; dispatch moves the ticket to the chosen department and
  counts the re-routing against the department it leaves (its learned acceptance rate).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.actions import Corrected
from services.intake.deps import Deps, published
from services.intake.http import (
    HttpError,
    bearer,
    instrumented,
    parse_json,
    read_body,
    require_content_type,
)
from services.intake.openapi import EventAccepted, Operation, Param
from shared.pii import MaskedText

PATH = "/v1/operators/tickets/{ticket_id}/category"
ROUTE_PATH = "/v1/operators/tickets/{ticket_id}/route"


class CategoryCorrection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    category: str = Field(min_length=1, max_length=64, description="a category code of the taxonomy")
    comment: MaskedText | None = Field(default=None, max_length=1000)


class RouteCorrection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    department: str = Field(min_length=1, max_length=64, description="a department id of the routing table")
    reason: MaskedText | None = Field(default=None, max_length=1000)


OPERATIONS = [
    Operation(
        "post",
        PATH,
        "An operator sets the ticket's category; the correction is stored as a training label",
        "operators",
        ok=202,
        body=CategoryCorrection,
        answer=Corrected,
        params=(
            Param("ticket_id", "path", "the ticket"),
            Param("Idempotency-Key", "header", "the same key applies once", False),
        ),
        errors=(400, 401, 404, 415, 422),
        security="operator",
    ),
    Operation(
        "post",
        ROUTE_PATH,
        "An operator sends the ticket to another department; dispatch learns from it",
        "operators",
        ok=202,
        body=RouteCorrection,
        answer=EventAccepted,
        params=(
            Param("ticket_id", "path", "the ticket"),
            Param("Idempotency-Key", "header", "the same key applies once", False),
        ),
        errors=(400, 401, 404, 409, 415, 422, 429),
        security="operator",
    ),
]


def routes(deps: Deps) -> list[Route]:
    async def correct(request: Request) -> Response:
        operator = deps.operator_tokens.identify(bearer(request))
        if operator is None:
            raise HttpError(401, "bad_credentials", "an operator bearer token is required")
        require_content_type(request, "application/json")
        fix = parse_json(CategoryCorrection, await read_body(request, deps.settings.max_body_bytes))
        await deps.limit("operator", operator)
        fixed = await deps.actions.correct_category(
            operator, request.path_params["ticket_id"], fix.category, request.headers.get("idempotency-key")
        )
        return JSONResponse(fixed.model_dump(), status_code=202)

    async def reroute(request: Request) -> Response:
        operator = deps.operator_tokens.identify(bearer(request))
        if operator is None:
            raise HttpError(401, "bad_credentials", "an operator bearer token is required")
        require_content_type(request, "application/json")
        move = parse_json(RouteCorrection, await read_body(request, deps.settings.max_body_bytes))
        await deps.limit("operator", operator)
        return published(
            await deps.actions.reroute(
                operator,
                request.path_params["ticket_id"],
                move.department,
                move.reason,
                request.headers.get("idempotency-key"),
            )
        )

    return [
        Route(PATH, instrumented("operator_category", deps.metrics, correct), methods=["POST"]),
        Route(ROUTE_PATH, instrumented("operator_route", deps.metrics, reroute), methods=["POST"]),
    ]
