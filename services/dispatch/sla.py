"""Deadlines by urgency class (Beijing 12345 standard DB11/T 2021-2022)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.events import Urgency

DISPATCH_WITHIN: dict[Urgency, timedelta] = {
    "emergency": timedelta(hours=1),
    "utilities": timedelta(hours=2),
    "general": timedelta(hours=24),
    "complex": timedelta(hours=24),
}

FEEDBACK_WITHIN: dict[Urgency, timedelta] = {
    "emergency": timedelta(hours=2),
    "utilities": timedelta(hours=24),
    "general": timedelta(days=7),
    "complex": timedelta(days=15),
}


def deadlines(urgency: Urgency, received_at: datetime) -> tuple[datetime, datetime]:
    """(dispatch due, feedback due), both counted from the citizen's call."""
    return received_at + DISPATCH_WITHIN[urgency], received_at + FEEDBACK_WITHIN[urgency]
