"""From a classified ticket to a department with deadlines."""

from __future__ import annotations

from services.dispatch.routing import RoutingTable
from services.dispatch.sla import deadlines
from shared import streams
from shared.effects import Effects, Publish, StoreWrite
from shared.events import TicketClassified, TicketDispatched, utcnow
from shared.ids import derive_id
from shared.store import iso, keys

SLA_FEEDBACK = "hotline:sla:feedback_due"


def dispatch(event: TicketClassified, *, routing: RoutingTable) -> Effects:
    if event.duplicate_of:
        return Effects(
            writes=[
                StoreWrite(
                    ticket_id=event.ticket_id,
                    event_id=event.event_id,
                    fields={"status": "duplicate", "duplicate_of": event.duplicate_of},
                    history={
                        "at": iso(utcnow()),
                        "event": "duplicate",
                        "summary": f"of {event.duplicate_of}",
                    },
                )
            ]
        )
    department, reason = routing.route(event.category, event.place.district)
    dispatch_due, feedback_due = deadlines(event.urgency, event.received_at)
    now = utcnow()
    out = TicketDispatched(
        event_id=derive_id(event.event_id, "dispatched"),
        ticket_id=event.ticket_id,
        occurred_at=now,
        department=department,
        category=event.category,
        district=event.place.district,
        urgency=event.urgency,
        dispatch_due_at=dispatch_due,
        feedback_due_at=feedback_due,
        reason=reason,
        received_at=event.received_at,
    )
    write = StoreWrite(
        ticket_id=event.ticket_id,
        event_id=out.event_id,
        fields={
            "status": "dispatched",
            "department": department,
            "dispatch_reason": reason,
            "dispatched_at": iso(now),
            "dispatch_due_at": iso(dispatch_due),
            "feedback_due_at": iso(feedback_due),
            "updated_at": iso(now),
        },
        history={"at": iso(now), "event": "dispatched", "summary": f"to {department}: {reason}"},
        ops=[
            ["ZADD", keys.department_open(department), event.received_at.timestamp(), event.ticket_id],
            ["ZADD", SLA_FEEDBACK, feedback_due.timestamp(), event.ticket_id],
        ],
    )
    return Effects(publish=[Publish(streams.DISPATCHED, out)], writes=[write])
