"""What evaluation reads of a ticket: dispatch's fields and its own `eval_` fields.

Dispatch is the single writer of `status` and `department`; evaluation writes only fields prefixed
`eval_` (and `evaluation_tracked_at`), so the two never clobber each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from redis.asyncio import Redis

from shared.bus import RoundTrip, as_str
from shared.events import SurveyRound
from shared.store import keys


class TicketState(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    exists: bool = False
    # Written by intake, classifier and dispatch.
    channel: str | None = None
    category: str | None = None
    district: str | None = None
    department: str | None = None
    dispatched_at: datetime | None = None
    dispatch_due_at: datetime | None = None
    # Evaluation's own: the dispatch it counted, and who it is attributed to.
    eval_department: str | None = None
    eval_category: str | None = None
    eval_district: str | None = None
    eval_dispatched_at: datetime | None = None
    eval_dispatch_due_at: datetime | None = None
    eval_responded_for: str | None = None
    # The survey of the current resolution.
    eval_resolved_at: datetime | None = None
    eval_survey_round: int | None = None
    eval_survey_status: str | None = None
    eval_survey_department: str | None = None
    eval_survey_district: str | None = None
    eval_survey_category: str | None = None
    eval_reopen_count: int = 0
    eval_supervision: bool = False
    eval_rounds: list[SurveyRound] = []

    @field_validator("eval_rounds", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    @field_validator("eval_supervision", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return value in ("1", b"1", True, 1)

    def merged(self, fields: Mapping[str, str | None]) -> TicketState:
        """This state after a StoreWrite's fields (used to thread state through one batch)."""
        data: dict[str, Any] = {**self.model_dump(), "exists": True}
        for name, value in fields.items():
            if name not in FIELDS:
                continue
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        return TicketState.model_validate(data)


FIELDS: tuple[str, ...] = tuple(f for f in TicketState.model_fields if f != "exists")


async def load_states(redis: Redis, ticket_ids: list[str]) -> dict[str, TicketState]:
    trip = RoundTrip(redis, transaction=False)
    for ticket_id in ticket_ids:
        trip.command("HMGET", keys.ticket(ticket_id), *FIELDS)
    rows = await trip.execute()
    out: dict[str, TicketState] = {}
    for ticket_id, row in zip(ticket_ids, rows, strict=True):
        data = {name: as_str(v) for name, v in zip(FIELDS, row, strict=True) if v is not None}
        out[ticket_id] = TicketState.model_validate({**data, "exists": bool(data)})
    return out
