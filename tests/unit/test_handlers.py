"""Handlers are plain functions: tested here with in-memory fakes, no Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.classifier.handlers import classify_batch
from services.dispatch.handlers import dispatch
from services.dispatch.routing import Department, RoutingTable, Rule
from services.dispatch.sla import deadlines
from services.evaluation.handlers import DISPATCHED_BY_DEPARTMENT, Policy, on_dispatched
from services.evaluation.state import TicketState
from shared import streams
from shared.events import Place, TicketClassified, TicketDispatched, TicketReceived, TicketReview

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FakePrediction:
    category: str
    confidence: float
    alternatives: list[tuple[str, float]]


class FakeModel:
    version = "fake-1"

    def __init__(self, answers: dict[str, FakePrediction]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def predict(self, texts: list[str]) -> list[FakePrediction]:
        self.calls.append(texts)
        return [self.answers[t] for t in texts]


def received(ticket_id: str, text: str) -> TicketReceived:
    return TicketReceived(
        event_id=f"e-{ticket_id}",
        ticket_id=ticket_id,
        occurred_at=T0,
        channel="telephony",
        source_id=ticket_id,
        text=text,
        received_at=T0,
    )


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


def test_classify_batch_predicts_once_for_the_whole_batch_and_publishes_each() -> None:
    model = FakeModel(
        {
            "停水": FakePrediction("utilities", 0.9, [("utilities", 0.9), ("housing_property", 0.05)]),
            "noise": FakePrediction("environment", 0.8, [("environment", 0.8)]),
        }
    )
    effects = classify_batch([received("T1", "停水"), received("T2", "noise")], model=model, review_below=0.5)
    assert model.calls == [["停水", "noise"]]
    assert [e.publish[0].stream for e in effects] == [streams.CLASSIFIED, streams.CLASSIFIED]
    first = effects[0].publish[0].event
    assert isinstance(first, TicketClassified)
    assert (first.category, first.model_version, first.received_at) == ("utilities", "fake-1", T0)
    assert effects[0].writes[0].fields["category"] == "utilities"


def test_low_confidence_also_goes_to_review() -> None:
    model = FakeModel({"?": FakePrediction("environment", 0.3, [("environment", 0.3), ("transport", 0.2)])})
    [effects] = classify_batch([received("T1", "?")], model=model, review_below=0.5)
    assert [p.stream for p in effects.publish] == [streams.CLASSIFIED, streams.REVIEW]
    assert isinstance(effects.publish[1].event, TicketReview)


def test_event_ids_are_deterministic_so_retries_republish_the_same_ids() -> None:
    model = FakeModel({"x": FakePrediction("transport", 0.9, [("transport", 0.9)])})
    a = classify_batch([received("T1", "x")], model=model, review_below=0.5)[0].publish[0].event
    b = classify_batch([received("T1", "x")], model=model, review_below=0.5)[0].publish[0].event
    assert a.event_id == b.event_id != "e-T1"


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
