"""Handlers are plain functions: tested here with in-memory fakes, no Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.classifier.handlers import classify_batch
from services.evaluation.handlers import DISPATCHED_BY_DEPARTMENT, Policy, on_dispatched
from services.evaluation.state import TicketState
from shared import streams
from shared.events import TicketClassified, TicketDispatched, TicketReceived, TicketReview

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
    assert ["HINCRBY", DISPATCHED_BY_DEPARTMENT, "water", 1] in write.ops
    assert ["HINCRBY", "hotline:rates:month:2026-11", "department|water|utilities|dispatched", 1] in write.ops
