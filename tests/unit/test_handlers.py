"""Handlers are plain functions: tested here with in-memory fakes, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.dispatch.handlers import dispatch
from services.dispatch.routing import Department, RoutingTable, Rule
from services.dispatch.sla import deadlines
from services.evaluation.handlers import DISPATCHED_BY_DEPARTMENT, Policy, on_dispatched
from services.evaluation.state import TicketState
from shared.events import Place, TicketClassified, TicketDispatched

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def classified(
    category: str = "utilities",
    urgency: str = "general",
    duplicate_of: str | None = None,
    district: str | None = None,
) -> TicketClassified:
    return TicketClassified(
        event_id="c-1",
        ticket_id="T1",
        occurred_at=T0,
        category=category,
        confidence=0.9,
        urgency=urgency,
        place=Place(district=district),
        model_version="m",
        received_at=T0,
        duplicate_of=duplicate_of,
    )


ROUTING = RoutingTable(
    departments=[
        Department(id="water", name="Water"),
        Department(id="east_water", name="East water"),
        Department(id="street_office", name="Street office"),
    ],
    rules=[
        Rule(category="utilities", department="water"),
        Rule(category="utilities", district="east", department="east_water"),
    ],
    fallback="street_office",
)


def test_dispatch_prefers_the_district_rule_and_sets_deadlines_by_urgency() -> None:
    effects = dispatch(classified(district="east", urgency="emergency"), routing=ROUTING)
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched)
    assert out.department == "east_water"
    assert out.dispatch_due_at == T0 + timedelta(hours=1)
    assert out.feedback_due_at == T0 + timedelta(hours=2)
    assert "east" in out.reason


def test_dispatch_falls_back_to_the_district_owner_when_no_rule_matches() -> None:
    out = dispatch(classified(category="health"), routing=ROUTING).publish[0].event
    assert isinstance(out, TicketDispatched)
    assert out.department == "street_office"
    assert out.reason.startswith("fallback")


def test_duplicates_are_linked_not_dispatched() -> None:
    effects = dispatch(classified(duplicate_of="T0"), routing=ROUTING)
    assert effects.publish == ()
    assert effects.writes[0].fields["status"] == "duplicate"


def test_deadlines_follow_the_12345_standard() -> None:
    assert deadlines("utilities", T0) == (T0 + timedelta(hours=2), T0 + timedelta(hours=24))
    assert deadlines("general", T0) == (T0 + timedelta(hours=24), T0 + timedelta(days=7))
    assert deadlines("complex", T0)[1] == T0 + timedelta(days=15)


def test_evaluation_counts_each_dispatch_by_department() -> None:
    event = dispatch(classified(), routing=ROUTING).publish[0].event
    assert isinstance(event, TicketDispatched)
    write = on_dispatched(event, TicketState(), Policy(tz=UTC, survey_delay=timedelta(hours=1))).writes[0]
    assert ["HINCRBY", DISPATCHED_BY_DEPARTMENT, "water", 1] in write.ops
    assert ["HINCRBY", "hotline:rates:month:2026-11", "department|water|utilities|dispatched", 1] in write.ops
