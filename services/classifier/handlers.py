"""From received tickets to their classification: plain functions the batch wiring calls.

A batch goes through two steps with one read in between, done by the wiring:
`analyse` (category, urgency, place, text signature: no I/O), then the wiring reads the open tickets the
batch could repeat (`duplicates.DuplicateIndex`), then `decide` (duplicates and the effects: no I/O).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.classifier import duplicates
from services.classifier.duplicates import Bucket, Candidate, Match, Signature
from services.classifier.place import Place as Located
from services.classifier.text import language_of, report_text
from services.classifier.urgency import Urgency, urgency_of
from shared import streams
from shared.effects import Effects, Op, Publish, SortedAdd, StoreWrite
from shared.events import Alternative, Place, TicketClassified, TicketReceived, TicketReview, utcnow
from shared.ids import derive_id
from shared.store import iso, keys


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


class UrgencyRule(Protocol):
    def __call__(self, text: str, category: str | None) -> Urgency: ...


class Locator(Protocol):
    def locate(self, text: str | None, lat: float | None, lon: float | None) -> Located: ...


@dataclass(frozen=True)
class Analysis:
    event: TicketReceived
    prediction: PredictionLike
    urgency: Urgency
    place: Located
    signature: Signature | None  # only for tickets with a known district: the others are never compared

    @property
    def bucket(self) -> Bucket | None:
        if self.place.district is None or self.signature is None:
            return None
        return (self.place.district, self.prediction.category)


@dataclass(frozen=True)
class CitizensChoice:
    """The category the citizen chose (Open311 service_code), kept over a model not sure enough that it
    is wrong. Its confidence is the model's for that category: a disagreement low enough goes to review."""

    category: str
    confidence: float
    alternatives: Sequence[tuple[str, float]]
    model_said: PredictionLike


def with_citizens_choice(event: TicketReceived, p: PredictionLike, overrule_at: float) -> PredictionLike:
    chosen = event.service_code
    if not chosen or chosen == p.category or p.confidence >= overrule_at:
        return p
    return CitizensChoice(chosen, dict(p.alternatives).get(chosen, 0.0), p.alternatives, p)


def analyse(
    events: list[TicketReceived],
    *,
    model: Model,
    gazetteer: Locator,
    overrule_citizen_at: float = 0.9,
    urgency: UrgencyRule = urgency_of,
) -> list[Analysis]:
    """`overrule_citizen_at`: the model's confidence from which its category replaces the citizen's;
    `urgency`: the urgency detector (the default one: the shipped cue file and urgency model)."""
    texts = [_text_of(e) for e in events]
    predictions = model.predict(texts)
    out = []
    for event, text, p in zip(events, texts, predictions, strict=True):
        location = event.location
        address = location.address if location else None
        place = gazetteer.locate(
            f"{text}\n{address}" if address else text,
            location.lat if location else None,
            location.lon if location else None,
        )
        sig = duplicates.signature(text) if place.district is not None else None
        p = with_citizens_choice(event, p, overrule_citizen_at)
        out.append(Analysis(event, p, urgency(text, p.category), place, sig))
    return out


def wanted_buckets(analyses: Sequence[Analysis], policy: duplicates.Policy) -> dict[Bucket, float]:
    """What the wiring must read: per bucket, the earliest received_at the batch's tickets could repeat."""
    return duplicates.earliest_needed(
        [(a.bucket, a.event.received_at.timestamp()) for a in analyses if a.bucket is not None],
        policy.window_seconds,
    )


def decide(
    analyses: Sequence[Analysis],
    *,
    candidates: Mapping[Bucket, Sequence[Candidate]],
    policy: duplicates.Policy,
    review_below: float,
    version: str,
) -> list[Effects]:
    """The effects of each ticket; it may repeat an indexed ticket or an earlier one of the batch."""
    pool = {bucket: list(found) for bucket, found in candidates.items()}
    matches: dict[int, Match | None] = {}
    # Oldest first, so a later ticket of the batch can repeat an earlier one whatever the batch order.
    for i in sorted(range(len(analyses)), key=lambda i: _order(analyses[i])):
        a = analyses[i]
        bucket, sig = a.bucket, a.signature
        if bucket is None or sig is None:
            matches[i] = None
            continue
        at = a.event.received_at.timestamp()
        match = duplicates.find_original(
            a.event.ticket_id, at, a.place.street, sig, pool.get(bucket, ()), policy
        )
        matches[i] = match
        if match is None:
            pool.setdefault(bucket, []).append(Candidate(a.event.ticket_id, at, a.place.street, sig))
    return [_effects(a, matches[i], policy, review_below, version) for i, a in enumerate(analyses)]


def _order(a: Analysis) -> tuple[float, str]:
    return (a.event.received_at.timestamp(), a.event.ticket_id)


def _text_of(event: TicketReceived) -> str:
    return report_text(event.title, event.text)


def _effects(
    a: Analysis, match: Match | None, policy: duplicates.Policy, review_below: float, version: str
) -> Effects:
    event, p = a.event, a.prediction
    alternatives = [Alternative(category=c, confidence=round(s, 4)) for c, s in p.alternatives]
    classified = TicketClassified(
        event_id=derive_id(event.event_id, "classified"),
        ticket_id=event.ticket_id,
        occurred_at=utcnow(),
        category=p.category,
        confidence=round(p.confidence, 4),
        alternatives=alternatives,
        urgency=a.urgency.level,
        urgency_cue=a.urgency.cue,
        place=Place(district=a.place.district, street=a.place.street, source=a.place.source),
        language=event.language or language_of(_text_of(event)),
        duplicate_of=match.ticket_id if match else None,
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
    fields: dict[str, str | None] = {
        "category": classified.category,
        "confidence": str(classified.confidence),
        "urgency": classified.urgency,
        "urgency_cue": classified.urgency_cue,
        "district": a.place.district,
        "street": a.place.street,
        "place_source": a.place.source,
        "model_version": version,
        "category_source": "citizen" if event.service_code == classified.category else "model",
        "needs_review": "1" if needs_review else "0",
        "classified_at": iso(classified.occurred_at),
        # The top 3 with their confidences, for the operator who reviews the ticket.
        "alternatives": json.dumps([[x.category, x.confidence] for x in alternatives[:3]]),
    }
    ops: list[Op] = []
    if needs_review:
        ops.append(SortedAdd(keys.review, event.ticket_id, event.received_at.timestamp()))
    if a.bucket is not None and a.signature is not None and match is None:
        fields[duplicates.SIGNATURE_FIELD] = duplicates.encode_signature(a.signature)
        ops.extend(duplicates.index_ops(a.bucket, event.ticket_id, event.received_at, policy))
    summary = f"{classified.category} ({classified.confidence:.2f}, {version}), urgency {classified.urgency}"
    if isinstance(p, CitizensChoice):
        said = p.model_said
        summary += f", the citizen's choice kept (the model said {said.category} {said.confidence:.2f})"
    if classified.urgency_cue:
        summary += f" ({classified.urgency_cue})"
    summary += f", {a.place.district or 'place unknown'}"
    if match is not None:
        summary += f", repeats {match.ticket_id} (similarity {match.similarity:.2f})"
    write = StoreWrite(
        ticket_id=event.ticket_id,
        event_id=classified.event_id,
        fields=fields,
        history={
            "at": iso(classified.occurred_at),
            "event": "classified",
            "summary": summary,
            # What the summary says, as data: the console shows it in the operator's language.
            **entry_facts(classified, a.place.district, match.ticket_id if match is not None else None),
        },
        ops=ops,
    )
    return Effects(publish=out, writes=[write])


def entry_facts(classified: TicketClassified, district: str | None, repeats: str | None) -> dict[str, str]:
    facts = {
        "category": classified.category,
        "confidence": f"{classified.confidence:.2f}",
        "urgency": classified.urgency,
    }
    optional = {"urgency_cue": classified.urgency_cue, "district": district, "repeats": repeats}
    return facts | {k: v for k, v in optional.items() if v}
