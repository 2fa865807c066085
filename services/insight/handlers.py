"""Streaming counts per category x district x hour: the series insight's surge detection reads."""

from __future__ import annotations

from shared.effects import Effects, StoreWrite
from shared.events import TicketClassified
from shared.store import keys

HOURLY = keys.counters("classified_hourly")


def count_classified(event: TicketClassified) -> Effects:
    hour = event.received_at.strftime("%Y-%m-%dT%H")
    series = f"{event.category}|{event.place.district or '-'}|{hour}"
    return Effects(
        writes=[
            StoreWrite(
                ticket_id=event.ticket_id, event_id=event.event_id, ops=[["HINCRBY", HOURLY, series, 1]]
            )
        ]
    )
