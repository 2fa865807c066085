"""From a received ticket to its classification: plain functions the batch wiring calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared import streams
from shared.effects import Effects, Publish, StoreWrite
from shared.events import Alternative, Place, TicketClassified, TicketReceived, TicketReview, utcnow
from shared.ids import derive_id
from shared.store import iso


class PredictionLike(Protocol):
    @property
    def category(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def alternatives(self) -> Sequence[tuple[str, float]]: ...


class Model(Protocol):
    @property
    def version(self) -> str: ...
    def predict(self, texts: list[str]) -> Sequence[PredictionLike]: ...


def classify_batch(events: list[TicketReceived], *, model: Model, review_below: float) -> list[Effects]:
    predictions = model.predict([_text_of(e) for e in events])
    return [_effects(e, p, model.version, review_below) for e, p in zip(events, predictions, strict=True)]


def _text_of(event: TicketReceived) -> str:
    return f"{event.title}\n{event.text}" if event.title else event.text


def _effects(event: TicketReceived, p: PredictionLike, version: str, review_below: float) -> Effects:
    alternatives = [Alternative(category=c, confidence=round(s, 4)) for c, s in p.alternatives]
    classified = TicketClassified(
        event_id=derive_id(event.event_id, "classified"),
        ticket_id=event.ticket_id,
        occurred_at=utcnow(),
        category=p.category,
        confidence=round(p.confidence, 4),
        alternatives=alternatives,
        place=Place(),
        language=event.language,
        model_version=version,
        received_at=event.received_at,
    )
    out = [Publish(streams.CLASSIFIED, classified)]
    needs_review = p.confidence < review_below
    if needs_review:
        out.append(
            Publish(
                streams.REVIEW,
                TicketReview(
                    event_id=derive_id(event.event_id, "review"),
                    ticket_id=event.ticket_id,
                    occurred_at=classified.occurred_at,
                    category=p.category,
                    confidence=classified.confidence,
                    alternatives=alternatives,
                    model_version=version,
                ),
            )
        )
    write = StoreWrite(
        ticket_id=event.ticket_id,
        event_id=classified.event_id,
        fields={
            "category": classified.category,
            "confidence": str(classified.confidence),
            "urgency": classified.urgency,
            "model_version": version,
            "needs_review": "1" if needs_review else "0",
            "classified_at": iso(classified.occurred_at),
        },
        history={
            "at": iso(classified.occurred_at),
            "event": "classified",
            "summary": f"{classified.category} ({classified.confidence:.2f}, {version})",
        },
    )
    return Effects(publish=out, writes=[write])
