"""What dispatch does with each event: plain functions from the event and a snapshot to Effects.

Dispatch is the single writer of a ticket's `status` and `department`:
`dispatched` -> `accepted` -> `resolved`; a rejection re-dispatches (`dispatched` again, to a department
that has not rejected it) or, after `max_rejections`, hands it to the coordinator (`coordinator`);
a reopened ticket goes back to `dispatched`. Duplicates become `duplicate`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.dispatch import state
from services.dispatch.assign import Assignment, Demand, Supply, assign
from services.dispatch.routing import RoutingTable
from services.dispatch.sla import DISPATCH_WITHIN, deadlines
from shared import streams
from shared.effects import Effects, HashSet, Increment, Op, Publish, SortedAdd, SortedRemove, StoreWrite
from shared.events import (
    TicketClassified,
    TicketDispatched,
    TicketReopened,
    TicketRerouted,
    TicketUpdated,
    Urgency,
)
from shared.ids import derive_id
from shared.status import ACTIVE, Status, moved
from shared.store import Ticket, iso, keys


class Assigned(BaseModel):
    """The part of a ticket dispatch reads back to act on department actions and reopenings."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ticket_id: str
    status: Status = Status.RECEIVED
    department: str | None = None
    category: str | None = None
    district: str | None = None
    urgency: Urgency = "general"
    received_at: datetime | None = None
    dispatch_due_at: datetime | None = None
    feedback_due_at: datetime | None = None
    accepted_at: datetime | None = None
    reopened_at: datetime | None = None
    attempt: int = 0
    rejections: int = 0
    rejected_by: str = ""
    reopen_count: int = 0
    media_url: str | None = None

    @classmethod
    def of(cls, ticket: Ticket) -> Assigned:
        return cls.model_validate({k: v for k, v in ticket.model_dump().items() if v is not None})

    def rejected(self) -> list[str]:
        return [d for d in self.rejected_by.split(",") if d]

    def demand(self) -> Demand | None:
        if not (self.category and self.dispatch_due_at and self.feedback_due_at):
            return None
        return Demand(self.category, self.district, self.dispatch_due_at, self.feedback_due_at)


# -- demands: what the wiring must read supply for ------------------------------------------------


def classified_demand(event: TicketClassified) -> Demand:
    dispatch_due, feedback_due = deadlines(event.urgency, event.received_at)
    return Demand(event.category, event.place.district, dispatch_due, feedback_due)


def by_urgency_now(ticket: Assigned, demand: Demand) -> Demand:
    """The demand with the deadlines of the ticket's urgency as it is now, counted from when they were
    (its reception, or its last reopening); never later than they were. An urgency raised after the
    ticket was dispatched (the urgency reviewer) brings them forward."""
    since = ticket.reopened_at or ticket.received_at
    if since is None:
        return demand
    dispatch_due, feedback_due = deadlines(ticket.urgency, since)
    return Demand(
        demand.category,
        demand.district,
        min(demand.dispatch_due, dispatch_due),
        min(demand.feedback_due, feedback_due),
    )


def reopened_demand(ticket: Assigned, now: datetime) -> Demand | None:
    if not ticket.category:
        return None
    dispatch_due, feedback_due = deadlines(ticket.urgency, now)
    return Demand(ticket.category, ticket.district, dispatch_due, feedback_due)


# -- handlers --------------------------------------------------------------------------------------


def on_classified(
    event: TicketClassified,
    *,
    table: RoutingTable,
    supply: Supply,
    now: datetime,
    previous: str | None,
    media_url: str | None = None,
    urgency: str | None = None,
) -> Effects:
    """A new ticket: a duplicate is linked both ways, anything else goes to the best department, with
    the citizen's photo (`media_url`) if there is one. `urgency`: the ticket's as the store has it, when
    the urgency reviewer raised it before dispatch read the classification (its re-routing then found
    the ticket not yet dispatched): it wins over the event's."""
    if urgency in DISPATCH_WITHIN and urgency != event.urgency:
        event = event.model_copy(update={"urgency": urgency})
    if event.duplicate_of:
        original = event.duplicate_of
        return Effects(
            writes=[
                StoreWrite(
                    ticket_id=event.ticket_id,
                    event_id=event.event_id,
                    fields={"status": Status.DUPLICATE, "duplicate_of": original, "updated_at": iso(now)},
                    history={"at": iso(now), "event": "duplicate", "summary": f"of {original}"},
                    # Closed: nothing left for an operator to review (the original is what is worked).
                    ops=[SortedRemove(keys.review, event.ticket_id)],
                ),
                # The department working on the original sees that citizens keep reporting it, and which
                # reports (history), instead of each repeat vanishing into a closed duplicate.
                StoreWrite(
                    ticket_id=original,
                    event_id=event.event_id,
                    ops=[Increment(keys.ticket(original), "repeat_count")],
                    history={
                        "at": iso(now),
                        "event": "repeated",
                        "summary": f"reported again as {event.ticket_id}",
                        "repeat": event.ticket_id,
                    },
                ),
            ]
        )
    demand = classified_demand(event)
    chosen = assign(table, demand, supply, now)
    if chosen is None:  # only when the table names no one at all: the coordinator owns it
        chosen = Assignment(table.coordinator, "no eligible department", ())
    return _dispatch(
        ticket_id=event.ticket_id,
        event_id=derive_id(event.event_id, "dispatched"),
        chosen=chosen,
        demand=demand,
        urgency=event.urgency,
        received_at=event.received_at,
        attempt=1,
        previous=previous,
        media_url=media_url,
        status=Status.DISPATCHED,
        # Not `urgency`: the classifier wrote it with the event, and the urgency reviewer may raise it
        # while this batch is being handled; writing the event's back would undo the raise.
        extra={
            "category": event.category,
            "district": event.place.district,
            "received_at": iso(event.received_at),
        },
        table=table,
        supply=supply,
        now=now,
    )


def on_updated(
    event: TicketUpdated, *, ticket: Assigned | None, table: RoutingTable, supply: Supply, now: datetime
) -> Effects:
    """A department accepted, rejected, resolved or noted a ticket, or the citizen commented on it."""
    if event.action == "comment":
        return _on_comment(event, ticket, table, now)
    history = {"at": iso(now), "event": event.action, "department": event.department, "note": event.note}
    if ticket is None or ticket.department != event.department or ticket.status not in ACTIVE:
        why = "not found" if ticket is None else f"{ticket.status} with {ticket.department}"
        return _history_only(event, {**history, "summary": f"ignored: ticket is {why}"})
    category, district = ticket.category or "", ticket.district
    learned = state.acceptance_field(event.department, category, district, "a")
    if event.action == "note":
        return _history_only(event, history)
    if event.action == "accept":
        if ticket.accepted_at is not None:
            return _history_only(event, {**history, "summary": "already accepted"})
        return _write(
            event,
            {
                "status": moved(ticket.status, Status.ACCEPTED),
                "accepted_at": iso(now),
                "updated_at": iso(now),
            },
            history,
            [SortedRemove(state.SLA_DISPATCH, ticket.ticket_id), Increment(state.ACCEPTANCE, learned)],
        )
    if event.action == "resolve":
        ops: list[Op] = [
            SortedRemove(keys.department_open(event.department), ticket.ticket_id),
            SortedRemove(state.queue(event.department), ticket.ticket_id),
            SortedRemove(state.SLA_DISPATCH, ticket.ticket_id),
            SortedRemove(state.SLA_FEEDBACK, ticket.ticket_id),
            # Resolved: a category no one reviewed is moot now, and the queue must not fill with it.
            SortedRemove(keys.review, ticket.ticket_id),
        ]
        fields: dict[str, str | None] = {
            "status": moved(ticket.status, Status.RESOLVED),
            "resolved_at": iso(now),
            "updated_at": iso(now),
        }
        if ticket.accepted_at is None:  # resolving without signing first counts as accepting
            fields["accepted_at"] = iso(now)
            ops.append(Increment(state.ACCEPTANCE, learned))
        return _write(event, fields, history, ops)
    return _on_rejected(event, ticket, history, table=table, supply=supply, now=now)


def _on_comment(event: TicketUpdated, ticket: Assigned | None, table: RoutingTable, now: datetime) -> Effects:
    """A citizen's comment goes to the department that has the ticket now (not the one intake saw): on
    the ticket, where its queue shows it, and to its own system when it has a webhook."""
    department = ticket.department if ticket is not None else None
    history = {"at": iso(now), "event": "comment", "department": department, "note": event.note}
    if ticket is None:
        return _history_only(event, {**history, "summary": "ignored: ticket not found"})
    fields = {
        "citizen_comment": event.note or "",
        "citizen_status": event.citizen_status,
        "citizen_media_url": event.media_url,
        "citizen_comment_at": iso(now),
    }
    dept = table.department(department) if department else None
    if dept is None:
        return _write(event, fields, {**history, "summary": "kept for the department it goes to"}, [])
    ops: list[Op] = []
    if dept.webhook_url:
        forwarded = event.model_copy(update={"department": dept.id})
        ops = _outbound(derive_id(event.event_id, "forwarded"), dept.id, forwarded.model_dump_json(), now)
    return _write(event, fields, {**history, "summary": f"for {dept.id}"}, ops)


def _outbound(event_id: str, department: str, body: str, now: datetime) -> list[Op]:
    """The ops that queue a webhook to a department's own system (sent by `outbound.Outbound`)."""
    job = state.OutboundJob(department=department, body=body)
    return [
        HashSet(state.OUTBOUND_JOBS, event_id, job.model_dump_json()),
        SortedAdd(state.OUTBOUND_DUE, event_id, now.timestamp()),
    ]


def _on_rejected(
    event: TicketUpdated,
    ticket: Assigned,
    history: dict[str, str | None],
    *,
    table: RoutingTable,
    supply: Supply,
    now: datetime,
) -> Effects:
    demand = ticket.demand()
    if event.department == table.coordinator:
        return _history_only(event, {**history, "summary": "rejection refused: the coordinator owns it"})
    if demand is None or ticket.received_at is None:
        raise LookupError(f"ticket {ticket.ticket_id} has no category or deadlines to re-dispatch it by")
    rejected = [*ticket.rejected(), event.department]
    count = ticket.rejections + 1
    learned = state.acceptance_field(event.department, demand.category, demand.district, "r")
    chosen = None if count >= table.max_rejections else assign(table, demand, supply, now, exclude=rejected)
    if chosen is None:
        chosen = Assignment(
            table.coordinator, f"to the coordinator after {count} rejections ({', '.join(rejected)})", ()
        )
    return _redispatch(
        event,
        ticket,
        chosen,
        demand,
        previous=event.department,
        extra={
            "rejections": str(count),
            "rejected_by": ",".join(rejected),
            "last_rejection": event.note,
            "accepted_at": None,  # the next department signs for it anew
        },
        table=table,
        supply=supply,
        now=now,
        history_event="rejected",
        history_note=f"by {event.department}: {event.note or 'no reason given'}",
        ops=[Increment(state.ACCEPTANCE, learned)],
    )


def on_reopened(
    event: TicketReopened, *, ticket: Assigned | None, table: RoutingTable, supply: Supply, now: datetime
) -> Effects:
    """Back to the department that handled it, unless it rejected the ticket (then the best other one)."""
    if ticket is None or ticket.received_at is None:
        raise LookupError(f"reopened ticket {event.ticket_id} was never dispatched")
    demand = reopened_demand(ticket, now)
    if demand is None:
        raise LookupError(f"reopened ticket {event.ticket_id} has no category")
    previous = ticket.department
    same = previous if previous and table.department(previous) and previous not in ticket.rejected() else None
    chosen: Assignment | None
    if same is not None:
        chosen = Assignment(same, f"reopened ({event.reason}): back to {same}, which handled it", ())
    else:
        chosen = assign(table, demand, supply, now, exclude=ticket.rejected())
    if chosen is None:
        chosen = Assignment(table.coordinator, f"reopened ({event.reason}): everyone else rejected it", ())
    return _redispatch(
        event,
        ticket,
        chosen,
        demand,
        previous=previous,
        extra={
            "reopen_count": str(event.reopen_count),
            "reopened_at": iso(now),
            "accepted_at": None,
            "resolved_at": None,
        },
        table=table,
        supply=supply,
        now=now,
        history_event="reopened",
        history_note=event.reason,
    )


def on_rerouted(
    event: TicketRerouted, *, ticket: Assigned | None, table: RoutingTable, supply: Supply, now: datetime
) -> Effects:
    """An operator's re-routing: to the department they chose, counted against the one it leaves; or,
    with no department, routing again after an operator corrected the category (`ticket` shows the new
    one), counted against no one: the category was wrong, not the router."""
    history = {"at": iso(now), "event": "rerouted", "department": event.department, "note": event.reason}
    if ticket is None or ticket.status not in ACTIVE or ticket.department == event.department:
        why = "not found" if ticket is None else f"{ticket.status} with {ticket.department}"
        return _history_only(event, {**history, "summary": f"ignored: ticket is {why}"})
    kept_demand = ticket.demand()
    if kept_demand is None or ticket.received_at is None:
        return _history_only(event, {**history, "summary": "ignored: the ticket has no deadlines to keep"})
    demand = by_urgency_now(ticket, kept_demand)
    previous = ticket.department
    ops: list[Op] = []
    if event.department is None:
        best = assign(table, demand, supply, now)
        if best is None or best.department == previous:
            if demand == kept_demand or previous is None:
                kept = f"kept with {previous}: the category {ticket.category} routes there"
                return _history_only(event, {**history, "summary": kept})
            # Same department, sooner deadlines (its urgency was raised): it is sent again so that the
            # department sees the urgency and the timers move forward.
            best = Assignment(previous, f"kept with {previous}, now {ticket.urgency}", ())
        chosen = best
        if demand != kept_demand:
            # A deadline brought forward into the past: the re-dispatch sets only the timers to come
            # (a passed one was escalated already), but this one never was; the next scan escalates it.
            ops += [
                SortedAdd(timer, ticket.ticket_id, due.timestamp())
                for timer, due in (
                    (state.SLA_DISPATCH, demand.dispatch_due),
                    (state.SLA_FEEDBACK, demand.feedback_due),
                )
                if due <= now
            ]
    elif table.department(event.department) is None:
        return _history_only(event, {**history, "summary": f"ignored: cannot send it to {event.department}"})
    else:
        if previous:  # the router's choice was wrong: it learns as from a rejection
            field = state.acceptance_field(previous, demand.category, demand.district, "r")
            ops.append(Increment(state.ACCEPTANCE, field))
        chosen = Assignment(
            event.department, f"re-routed by {event.operator}: {event.reason or 'no reason given'}", ()
        )
    return _redispatch(
        event,
        ticket,
        chosen,
        demand,
        previous=previous,
        extra={"accepted_at": None, "rerouted_by": event.operator},
        table=table,
        supply=supply,
        now=now,
        history_event="rerouted",
        history_note=f"from {previous or '-'} by {event.operator}: {event.reason or 'no reason given'}",
        ops=ops,
    )


def _redispatch(
    event: TicketUpdated | TicketReopened | TicketRerouted,
    ticket: Assigned,
    chosen: Assignment,
    demand: Demand,
    *,
    previous: str | None,
    extra: dict[str, str | None],
    table: RoutingTable,
    supply: Supply,
    now: datetime,
    history_event: str,
    history_note: str,
    ops: list[Op] | None = None,
) -> Effects:
    """A ticket already dispatched once goes out again: the next attempt, with an id derived from `event`."""
    assert ticket.received_at is not None  # checked by the callers
    return _dispatch(
        ticket_id=ticket.ticket_id,
        event_id=derive_id(event.event_id, "redispatched"),
        chosen=chosen,
        demand=demand,
        urgency=ticket.urgency,
        received_at=ticket.received_at,
        attempt=ticket.attempt + 1,
        previous=previous,
        media_url=ticket.media_url,
        status=moved(
            ticket.status, Status.COORDINATOR if chosen.department == table.coordinator else Status.DISPATCHED
        ),
        extra=extra,
        table=table,
        supply=supply,
        now=now,
        history_event=history_event,
        history_note=history_note,
        ops=ops,
    )


# -- effects ---------------------------------------------------------------------------------------


def _dispatch(
    *,
    ticket_id: str,
    event_id: str,
    chosen: Assignment,
    demand: Demand,
    urgency: Urgency,
    received_at: datetime,
    attempt: int,
    previous: str | None,
    media_url: str | None,
    status: Status,
    extra: dict[str, str | None],
    table: RoutingTable,
    supply: Supply,
    now: datetime,
    history_event: str = "dispatched",
    history_note: str | None = None,
    ops: list[Op] | None = None,
) -> Effects:
    department = chosen.department
    out = TicketDispatched(
        event_id=event_id,
        ticket_id=ticket_id,
        occurred_at=now,
        department=department,
        category=demand.category,
        district=demand.district,
        urgency=urgency,
        dispatch_due_at=demand.dispatch_due,
        feedback_due_at=demand.feedback_due,
        reason=chosen.reason,
        attempt=attempt,
        received_at=received_at,
        media_url=media_url,
    )
    supply.added(department, demand.feedback_due)
    all_ops: list[Op] = list(ops or [])
    if previous and previous != department:
        all_ops += [
            SortedRemove(keys.department_open(previous), ticket_id),
            SortedRemove(state.queue(previous), ticket_id),
        ]
    all_ops += [
        SortedAdd(keys.department_open(department), ticket_id, received_at.timestamp()),
        SortedAdd(state.queue(department), ticket_id, demand.feedback_due.timestamp()),
    ]
    # On a re-dispatch, a deadline already passed was escalated (or is being): re-adding it would
    # escalate it twice. A first dispatch that is already late is escalated by the next scan.
    for timer, due in ((state.SLA_DISPATCH, demand.dispatch_due), (state.SLA_FEEDBACK, demand.feedback_due)):
        if attempt == 1 or due > now:
            all_ops.append(SortedAdd(timer, ticket_id, due.timestamp()))
    if status == Status.COORDINATOR:
        all_ops.append(SortedAdd(state.COORDINATOR_QUEUE, ticket_id, now.timestamp()))
    dept = table.department(department)
    if dept is not None and dept.webhook_url:
        all_ops += _outbound(event_id, department, out.model_dump_json(), now)
    summary = f"to {department}: {chosen.reason}"
    write = StoreWrite(
        ticket_id=ticket_id,
        event_id=event_id,
        fields={
            **extra,
            "status": status,
            "department": department,
            "dispatch_reason": chosen.reason,
            "dispatched_at": iso(now),
            "dispatch_due_at": iso(demand.dispatch_due),
            "feedback_due_at": iso(demand.feedback_due),
            "attempt": str(attempt),
            "updated_at": iso(now),
        },
        history={
            "at": iso(now),
            "event": history_event,
            "department": department,
            "summary": f"{history_note}; {summary}" if history_note else summary,
        },
        ops=all_ops,
    )
    return Effects(publish=[Publish(streams.DISPATCHED, out)], writes=[write])


def _write(
    event: TicketUpdated,
    fields: dict[str, str | None],
    history: dict[str, str | None],
    ops: list[Op],
) -> Effects:
    return Effects(
        writes=[StoreWrite(event.ticket_id, event.event_id, fields=fields, history=history, ops=ops)]
    )


def _history_only(
    event: TicketUpdated | TicketReopened | TicketRerouted, history: dict[str, str | None]
) -> Effects:
    return Effects(writes=[StoreWrite(event.ticket_id, event.event_id, history=history)])
