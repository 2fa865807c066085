"""Departments: their queue, and accept / reject (退单) / resolve / note on the tickets sent to them.

Each token belongs to one department. An action becomes a `TicketUpdated` event on tickets.updated;
dispatch consumes it and alone writes the ticket's status and department, so intake only checks that
the ticket is (still) this department's, publishes once and records the action in the history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.credentials import Credentials, token_hash
from services.intake.deps import Deps, published
from services.intake.http import (
    HttpError,
    available,
    bearer,
    instrumented,
    parse_fields,
    parse_json,
    read_body,
    require_content_type,
)
from services.intake.openapi import EventAccepted, Operation, Param
from services.intake.settings import dev_department_token
from shared.events import DepartmentAction
from shared.pii import MaskedText
from shared.status import CLOSED
from shared.store import Ticket, keys

QUEUE = "/v1/departments/{dept}/tickets"
ACTION = "/v1/departments/{dept}/tickets/{ticket_id}/{action}"
ACTIONS: tuple[DepartmentAction, ...] = ("accept", "reject", "resolve", "note")


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    note: MaskedText | None = Field(
        default=None, max_length=4000, description="required to reject and for a note"
    )


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class QueueTicket(BaseModel):
    """What a department sees of a ticket: never the caller's number, only its masked form."""

    model_config = ConfigDict(extra="ignore")

    ticket_id: str
    status: str
    category: str | None = None
    urgency: str | None = None
    title: str | None = None
    text: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    district: str | None = None
    street: str | None = None
    caller_masked: str | None = None
    media_url: str | None = Field(None, description="the citizen's photo of the problem (http or https)")
    repeat_count: int = Field(0, description="how many later reports were linked to this one as duplicates")
    citizen_comment: str | None = Field(None, description="the citizen's latest comment (Open311 update)")
    citizen_status: str | None = Field(None, description="the state the citizen's app gave with it")
    citizen_media_url: str | None = Field(None, description="the photo sent with that comment, if any")
    citizen_comment_at: str | None = None
    channel: str | None = Field(None, description="proactive: a work order the hotline opened for a problem")
    proactive_ticket_id: str | None = Field(
        None,
        description="the work order covering this call's problem: fixing its cause answers this call too",
    )
    problem_id: str | None = Field(None, description="the problem (place and topic) the call is part of")
    received_at: str | None = None
    dispatched_at: str | None = None
    dispatch_due_at: str | None = None
    feedback_due_at: str | None = None


class Queue(BaseModel):
    department: str
    tickets: list[QueueTicket]
    next_offset: int | None = Field(description="pass as offset for the next page; null at the end")


class _Action(BaseModel):
    action: Literal["accept", "reject", "resolve", "note"]
    body: ActionBody

    @model_validator(mode="after")
    def _note_when_needed(self) -> _Action:
        if self.action in ("reject", "note") and not (self.body.note or "").strip():
            raise ValueError(f"a note is required to {self.action}")
        return self


DEPT = Param("dept", "path", "department id (routing table)")
OPERATIONS = [
    Operation(
        "get",
        QUEUE,
        "The department's open tickets, oldest first",
        "departments",
        answer=Queue,
        params=(
            DEPT,
            Param("limit", "query", "page size", False, {"type": "integer", "minimum": 1, "maximum": 500}),
            Param("offset", "query", "from next_offset", False, {"type": "integer", "minimum": 0}),
        ),
        errors=(401, 403, 422),
        security="department",
    ),
    Operation(
        "post",
        ACTION,
        "Accept, reject (退单, note required), resolve, or add a note; an Idempotency-Key makes retries safe",
        "departments",
        ok=202,
        body=ActionBody,
        answer=EventAccepted,
        params=(
            DEPT,
            Param("ticket_id", "path", "the ticket"),
            Param("action", "path", "what the department does", schema={"enum": list(ACTIONS)}),
            Param("Idempotency-Key", "header", "the same key publishes once", False),
        ),
        errors=(400, 401, 403, 404, 409, 415, 422),
        security="department",
    ),
]


def routes(deps: Deps) -> list[Route]:
    configured = deps.settings.department_tokens
    tokens = Credentials(
        configured
        if configured is not None
        else {d: [token_hash(dev_department_token(d))] for d in deps.department_names}
    )

    def authorize(request: Request) -> str:
        dept = str(request.path_params["dept"])
        holder = tokens.identify(bearer(request))
        if holder is None:
            raise HttpError(401, "bad_credentials", "a department bearer token is required")
        if holder != dept:
            raise HttpError(403, "wrong_department", "this token belongs to another department")
        return dept

    async def queue(request: Request) -> Response:
        dept = authorize(request)
        query = parse_fields(QueueQuery, dict(request.query_params))
        await deps.limit("department", dept)
        ids = await available(
            deps.redis.zrange(keys.department_open(dept), query.offset, query.offset + query.limit - 1)
        )
        found = await available(deps.store.get_many([_text(i) for i in ids]))
        # The open set is an index; a ticket re-dispatched or closed since is skipped, not shown.
        mine = [
            QueueTicket.model_validate(_plain(t))
            for t in found
            if t is not None and t.department == dept and t.status not in CLOSED
        ]
        page = Queue(
            department=dept,
            tickets=mine,
            next_offset=query.offset + query.limit if len(ids) == query.limit else None,
        )
        return JSONResponse(page.model_dump(mode="json"))

    async def act(request: Request) -> Response:
        dept = authorize(request)
        ticket_id = request.path_params["ticket_id"]
        body = await read_body(request, deps.settings.max_body_bytes)
        if body.strip():
            require_content_type(request, "application/json")
            payload = parse_json(ActionBody, body)
        else:
            payload = ActionBody()
        action = parse_fields(_Action, {"action": request.path_params["action"], "body": payload}).action
        await deps.limit("department", dept)
        return published(
            await deps.actions.department_action(
                dept, ticket_id, action, payload.note, request.headers.get("idempotency-key")
            )
        )

    return [
        Route(QUEUE, instrumented("department_queue", deps.metrics, queue), methods=["GET"]),
        Route(ACTION, instrumented("department_action", deps.metrics, act), methods=["POST"]),
    ]


def _plain(ticket: Ticket) -> dict[str, object]:
    return ticket.model_dump(mode="json")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
