"""Counting outcomes: what evaluation records for each dispatched ticket."""

from __future__ import annotations

from shared.effects import Effects, StoreWrite
from shared.events import TicketDispatched, utcnow
from shared.store import iso, keys

DISPATCHED_BY_DEPARTMENT = keys.counters("dispatched_by_department")
DISPATCHED_BY_CATEGORY = keys.counters("dispatched_by_category")


def on_dispatched(event: TicketDispatched) -> Effects:
    now = utcnow()
    return Effects(
        writes=[
            StoreWrite(
                ticket_id=event.ticket_id,
                event_id=event.event_id,
                fields={"evaluation_tracked_at": iso(now)},
                ops=[
                    ["HINCRBY", DISPATCHED_BY_DEPARTMENT, event.department, 1],
                    ["HINCRBY", DISPATCHED_BY_CATEGORY, event.category, 1],
                ],
            )
        ]
    )
