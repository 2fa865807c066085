"""Operators' corrections of what the machines decided.

- Category: the ticket's category changes and the fix is kept as a training label, in the
  `hotline:labels` stream (`keys.labels`) as flat fields {ticket_id, text, category, previous, operator,
  at}, in the same script as the ticket update.
- Routing: `TicketRerouted` on tickets.rerouted; dispatch moves the ticket to the chosen department and
  counts the re-routing against the department it leaves (its learned acceptance rate).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.deps import Deps, published
from services.intake.http import (
    HttpError,
    available,
    bearer,
    instrumented,
    parse_json,
    read_body,
    require_content_type,
)
from services.intake.openapi import EventAccepted, Operation, Param
from shared import streams
from shared.effects import StoreWrite
from shared.events import TicketRerouted, utcnow
from shared.ids import derive_id
from shared.pii import MaskedText
from shared.store import CLOSED_STATUSES, iso, keys

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


class Corrected(BaseModel):
    ticket_id: str
    category: str
    previous: str | None
    duplicate: bool


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
    codes = set(deps.taxonomy.codes())

    async def correct(request: Request) -> Response:
        operator = deps.operator_tokens.identify(bearer(request))
        if operator is None:
            raise HttpError(401, "bad_credentials", "an operator bearer token is required")
        require_content_type(request, "application/json")
        fix = parse_json(CategoryCorrection, await read_body(request, deps.settings.max_body_bytes))
        if fix.category not in codes:
            raise HttpError(
                422,
                "invalid_payload",
                "unknown category",
                [{"field": "category", "problem": f"not in the taxonomy: {sorted(codes)}", "type": "enum"}],
            )
        await deps.limit("operator", operator)
        ticket_id = request.path_params["ticket_id"]
        ticket = await available(deps.store.get(ticket_id))
        if ticket is None:
            raise HttpError(404, "unknown_ticket", f"no ticket {ticket_id}")
        if (
            ticket.category == fix.category
            and (ticket.model_extra or {}).get("category_source") == "operator"
        ):
            # Already corrected to this (a retry, or a second operator agreeing): nothing new to learn.
            deps.metrics.events.labels("label", "duplicate").inc()
            return _corrected(ticket_id, fix.category, ticket.category, duplicate=True)
        key = request.headers.get("idempotency-key")
        now = iso(utcnow())
        label = {
            "ticket_id": ticket_id,
            "text": ticket.text or "",
            "category": fix.category,
            "previous": ticket.category or "",
            "operator": operator,
            "at": now,
        }
        write = StoreWrite(
            ticket_id=ticket_id,
            # Keyed on the ticket's last update too, so A -> B -> A -> B records every correction.
            event_id=derive_id(
                ticket_id, "category", operator, fix.category, key[:200] if key else str(ticket.updated_at)
            ),
            fields={"category": fix.category, "category_source": "operator", "updated_at": now},
            history={
                "at": now,
                "event": "category_corrected",
                "summary": f"{label['previous'] or '-'} -> {fix.category} by {operator}",
            },
            ops=[
                [
                    "XADD",
                    keys.labels,
                    "MAXLEN",
                    "~",
                    deps.settings.stream_maxlen,
                    "*",
                    *(item for pair in label.items() for item in pair),
                ]
            ],
        )
        await available(deps.store.apply(write, scope="intake-operator"))
        deps.metrics.events.labels("label", "ok").inc()
        return _corrected(ticket_id, fix.category, ticket.category, duplicate=False)

    async def reroute(request: Request) -> Response:
        operator = deps.operator_tokens.identify(bearer(request))
        if operator is None:
            raise HttpError(401, "bad_credentials", "an operator bearer token is required")
        require_content_type(request, "application/json")
        move = parse_json(RouteCorrection, await read_body(request, deps.settings.max_body_bytes))
        if move.department not in deps.department_names:
            raise HttpError(
                422,
                "invalid_payload",
                "unknown department",
                [{"field": "department", "problem": "not in the routing table", "type": "enum"}],
            )
        await deps.limit("operator", operator)
        ticket_id = request.path_params["ticket_id"]
        ticket = await available(deps.store.get(ticket_id))
        if ticket is None:
            raise HttpError(404, "unknown_ticket", f"no ticket {ticket_id}")
        if ticket.status in CLOSED_STATUSES or ticket.department is None:
            raise HttpError(409, "not_dispatched", f"the ticket is {ticket.status}: nothing to re-route")
        if ticket.department == move.department:
            raise HttpError(409, "same_department", f"the ticket is already with {move.department}")
        key = request.headers.get("idempotency-key")
        event = TicketRerouted(
            # Keyed on the department it leaves, so A -> B -> A -> B records every move.
            event_id=derive_id(
                ticket_id, "rerouted", ticket.department, move.department, key[:200] if key else ""
            ),
            ticket_id=ticket_id,
            occurred_at=utcnow(),
            operator=operator,
            department=move.department,
            reason=move.reason,
        )
        result = await deps.publish_once(
            "reroute",
            streams.REROUTED,
            event,
            history={
                "event": "reroute_requested",
                "summary": f"{ticket.department} -> {move.department} by {operator}",
            },
            refuse_statuses=CLOSED_STATUSES,
        )
        if result.outcome == "conflict":
            raise HttpError(409, "not_dispatched", f"the ticket is {result.detail}")
        return published(result)

    return [
        Route(PATH, instrumented("operator_category", deps.metrics, correct), methods=["POST"]),
        Route(ROUTE_PATH, instrumented("operator_route", deps.metrics, reroute), methods=["POST"]),
    ]


def _corrected(ticket_id: str, category: str, previous: str | None, *, duplicate: bool) -> JSONResponse:
    answer = Corrected(ticket_id=ticket_id, category=category, previous=previous, duplicate=duplicate)
    return JSONResponse(answer.model_dump(), status_code=202)
