"""Handlers are plain functions: tested here with in-memory fakes, no Redis.

The classifier's are in test_classifier_handlers.py, dispatch's in test_dispatch.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.evaluation.handlers import DISPATCHED_BY_DEPARTMENT, Policy, on_dispatched
from services.evaluation.state import TicketState
from shared.effects import Increment
from shared.events import TicketDispatched

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def test_evaluation_counts_each_dispatch_by_department() -> None:
    event = TicketDispatched(
        event_id="d-1",
        ticket_id="T1",
        occurred_at=T0,
        department="water",
        category="utilities",
        urgency="general",
        dispatch_due_at=T0,
        feedback_due_at=T0,
        reason="test",
        received_at=T0,
    )
    write = on_dispatched(event, TicketState(), Policy(tz=UTC, survey_delay=timedelta(hours=1))).writes[0]
    assert Increment(DISPATCHED_BY_DEPARTMENT, "water") in write.ops
    assert Increment("hotline:rates:month:2026-11", "department|water|utilities|dispatched") in write.ops
