"""Closing the loop: each event to the counters, surveys and reopenings it causes.

Plain functions of (event, ticket state, policy) -> Effects. `with_state` threads each ticket's state
through a batch, so two events of one ticket in the same batch see each other's writes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any, TypeVar

from services.evaluation.rates import Units, count
from services.evaluation.state import TicketState
from shared import streams, surveys
from shared.effects import (
    NONE,
    BatchHandler,
    Effects,
    Increment,
    Op,
    Publish,
    SortedAdd,
    SortedRemove,
    StoreWrite,
)
from shared.events import (
    Event,
    SurveyAnswered,
    SurveyRound,
    TicketDispatched,
    TicketReopened,
    TicketUpdated,
    utcnow,
)
from shared.ids import derive_id
from shared.store import iso, keys

E = TypeVar("E", bound=Event)
# All-time dispatch totals (the audit of `hotline demo` and the fault tests read them).
DISPATCHED_BY_DEPARTMENT = keys.counters("dispatched_by_department")
DISPATCHED_BY_CATEGORY = keys.counters("dispatched_by_category")
Ops = list[Op]


@dataclass(frozen=True)
class Policy:
    tz: tzinfo
    survey_delay: timedelta
    supervision_after: int = 2


def survey_member(ticket_id: str, survey_round: int) -> str:
    """A survey in the due and open sorted sets."""
    return f"{ticket_id}|{survey_round}"


def on_dispatched(event: TicketDispatched, state: TicketState, policy: Policy) -> Effects:
    """Every dispatch joins the response-rate denominator of its department, district and category."""
    units = Units.of(event.department, event.district, event.category)
    return Effects(
        writes=[
            StoreWrite(
                ticket_id=event.ticket_id,
                event_id=event.event_id,
                fields={
                    "eval_department": event.department,
                    "eval_category": event.category,
                    "eval_district": event.district,
                    "eval_dispatched_at": iso(event.occurred_at),
                    "eval_dispatch_due_at": iso(event.dispatch_due_at),
                    "evaluation_tracked_at": iso(utcnow()),
                },
                ops=[
                    Increment(DISPATCHED_BY_DEPARTMENT, event.department),
                    Increment(DISPATCHED_BY_CATEGORY, event.category),
                    *count(units, "dispatched", event.occurred_at, policy.tz),
                ],
            )
        ]
    )


def on_updated(event: TicketUpdated, state: TicketState, policy: Policy) -> Effects:
    """accept: the department signed for the ticket; resolve: it signed for it too, and a survey is due."""
    if event.action not in ("accept", "resolve"):
        return NONE
    fields: dict[str, str | None] = {}
    ops: Ops = []
    history: dict[str, Any] | None = None
    _respond(event, state, policy, fields, ops)
    # A proactive work order has no caller to ask: whether it worked is the problem's effect evaluation
    # (calls after it against the forecast), not a survey. It still counts in the response rate.
    if event.action == "resolve" and state.channel != "proactive":
        history = _schedule_survey(event, state, policy, fields, ops)
    if not fields:
        return NONE
    return Effects(
        writes=[StoreWrite(event.ticket_id, event.event_id, fields=fields, history=history, ops=ops)]
    )


def _respond(
    event: TicketUpdated, state: TicketState, policy: Policy, fields: dict[str, str | None], ops: Ops
) -> None:
    # Dispatch's own fields come first: it writes them with the dispatch, so they are current even when
    # evaluation has not yet read that TicketDispatched.
    dispatched_at = state.dispatched_at or state.eval_dispatched_at
    due = state.dispatch_due_at or state.eval_dispatch_due_at
    department = state.department or state.eval_department
    if dispatched_at is None or due is None or event.department != department:
        return  # not the department the ticket is with: its action does not answer this dispatch
    dispatch = iso(dispatched_at)
    if state.eval_responded_for == dispatch:
        return  # this dispatch is already signed for (accept, then resolve)
    in_time = event.occurred_at <= due
    fields |= {
        "eval_responded_for": dispatch,
        "eval_responded_at": iso(event.occurred_at),
        "eval_responded_in_time": "1" if in_time else "0",
    }
    if in_time:
        units = Units.of(
            department, state.eval_district or state.district, state.eval_category or state.category
        )
        # Counted in the dispatch's own buckets, beside its denominator.
        ops.extend(count(units, "responded", dispatched_at, policy.tz))


def _schedule_survey(
    event: TicketUpdated, state: TicketState, policy: Policy, fields: dict[str, str | None], ops: Ops
) -> dict[str, Any] | None:
    survey_round = state.eval_reopen_count + 1
    if state.eval_survey_round == survey_round:
        return None  # resolved again without a reopening in between: one survey per resolution
    due = event.occurred_at + policy.survey_delay
    fields |= {
        "eval_resolved_at": iso(event.occurred_at),
        surveys.ROUND_FIELD: str(survey_round),
        surveys.STATUS_FIELD: "scheduled",
        "eval_survey_department": event.department,
        "eval_survey_district": state.eval_district or state.district,
        "eval_survey_category": state.eval_category or state.category,
    }
    ops.append(SortedAdd(keys.surveys_due, survey_member(event.ticket_id, survey_round), due.timestamp()))
    return {
        "at": iso(event.occurred_at),
        "event": "survey_scheduled",
        "summary": f"survey {survey_round} due {iso(due)}",
    }


def survey_units(state: TicketState) -> Units:
    """Survey outcomes count for the department that resolved the ticket."""
    return Units.of(state.eval_survey_department, state.eval_survey_district, state.eval_survey_category)


def on_answered(event: SurveyAnswered, state: TicketState, policy: Policy) -> Effects:
    """The citizen's verdict: resolution and satisfaction counters; not resolved or dissatisfied reopens."""
    survey_round = event.survey_round or state.eval_survey_round
    if survey_round is None:
        return NONE  # no survey was ever opened for this ticket: nothing to count it against
    if survey_round == state.eval_survey_round and state.eval_survey_status == "answered":
        return NONE  # this round's answer is already counted
    member = survey_member(event.ticket_id, survey_round)
    units = survey_units(state)
    at = event.occurred_at
    ops: Ops = [SortedRemove(keys.surveys_due, member), SortedRemove(keys.surveys_open, member)]
    ops += count(units, "evaluated", at, policy.tz)
    if event.resolved:
        ops += count(units, "resolved", at, policy.tz)
    if event.satisfaction is not None:
        ops += count(units, "rated", at, policy.tz)
        if event.satisfaction >= surveys.SATISFIED_FROM:
            ops += count(units, "satisfied", at, policy.tz)
    rounds = [
        *state.eval_rounds,
        SurveyRound(
            survey_round=survey_round,
            department=state.eval_survey_department,
            resolved_at=state.eval_resolved_at,
            answered_at=at,
            resolved=event.resolved,
            satisfaction=event.satisfaction,
            comment=event.comment,
        ),
    ]
    fields: dict[str, str | None] = {
        surveys.STATUS_FIELD: "answered",
        "eval_answered_at": iso(at),
        "eval_rounds": json.dumps([r.model_dump(mode="json") for r in rounds], ensure_ascii=False),
    }
    verdict = "resolved" if event.resolved else "not resolved"
    rating = f", satisfaction {event.satisfaction}/5" if event.satisfaction is not None else ""
    history = {"at": iso(at), "event": "survey_answered", "summary": f"{verdict}{rating}"}
    publish: list[Publish] = []
    reason = _reopen_reason(event)
    if reason:
        reopen_count = state.eval_reopen_count + 1
        supervision = reopen_count >= policy.supervision_after
        fields["eval_reopen_count"] = str(reopen_count)
        ops += count(units, "reopened", at, policy.tz)
        if supervision:
            fields["eval_supervision"] = "1"
            ops.append(SortedAdd(keys.supervision, event.ticket_id, at.timestamp()))
        publish.append(
            Publish(
                streams.REOPENED,
                TicketReopened(
                    event_id=derive_id(event.event_id, "reopened"),
                    ticket_id=event.ticket_id,
                    occurred_at=at,
                    reason=reason,
                    reopen_count=reopen_count,
                    department=state.eval_survey_department,
                    supervision=supervision,
                    history=rounds,
                ),
            )
        )
        history["summary"] += f"; reopened ({reopen_count})" + (", flagged for 督办" if supervision else "")
    return Effects(
        publish=publish,
        writes=[StoreWrite(event.ticket_id, event.event_id, fields=fields, history=history, ops=ops)],
    )


def _reopen_reason(event: SurveyAnswered) -> str | None:
    if not event.resolved:
        return "citizen says not resolved"
    if event.satisfaction is not None and event.satisfaction <= surveys.DISSATISFIED_UP_TO:
        return f"citizen dissatisfied ({event.satisfaction}/5)"
    return None


StateLoader = Callable[[list[str]], Awaitable[dict[str, TicketState]]]


def with_state(
    load: StateLoader, handler: Callable[[E, TicketState, Policy], Effects], policy: Policy
) -> BatchHandler[E]:
    """The batch form of `handler`: states read once per batch, then updated by each event's writes."""

    async def batch(events: list[E]) -> list[Effects]:
        states = await load(sorted({e.ticket_id for e in events}))
        out = []
        for event in events:
            effects = handler(event, states[event.ticket_id], policy)
            for write in effects.writes:
                if write.ticket_id in states:
                    states[write.ticket_id] = states[write.ticket_id].merged(write.fields)
            out.append(effects)
        return out

    return batch
