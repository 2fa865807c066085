"""The urgency review: a second opinion on classified tickets that can only raise them to `emergency`.

Plain functions; the wiring (`review`) reads the tickets' texts and runs `review_batch` in a thread, since
the e5 model behind `score` costs 11-250 ms of CPU a text. A ticket is asked about unless it is already an
emergency, a duplicate (dispatch closes it; its original is what is worked), received more than `max_age`
ago (past the one-hour emergency deadline, raising it helps no one: it is counted instead), or about a smell
and nothing else (the city's policy: a lingering odour is not an emergency; the lexicon alone decides when
a smell makes one). At or above the model's threshold, the ticket is raised: urgency `emergency`, the cue
"e5:0.97", a history entry, and a TicketRerouted (no department) so dispatch routes it again with the
emergency deadlines.

A raise also asks what the hazard is (`recognise`: gas, fire, medical...; data/hazards.yaml). An emergency
filed under a category whose departments cannot act on it waits there (a stroke filed under utilities goes
to the water company): when the kind is recognised with enough confidence, the ticket is filed under the
kind's category instead and the TicketRerouted carries it, so dispatch routes it by that category (as after
an operator's correction: the router is not blamed). A category an operator chose is never moved. The
classifier's own emergencies are asked their hazard too (not scored: nothing to raise) and refiled by the
same rule: its lexicon finds the emergency, not always the department (BENCHMARKS.md, urgency).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, get_args

from services.classifier.hazard_kind import Recognised
from services.classifier.hazards import Hazards
from shared import streams
from shared.effects import Effects, Publish, StoreWrite
from shared.events import TicketClassified, TicketRerouted
from shared.ids import derive_id
from shared.store import iso

Outcome = Literal["raised", "refiled", "kept", "emergency", "duplicate", "too_old", "smell_only", "no_text"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# Who re-routes a raised ticket, as dispatch records it (`rerouted_by`).
REVIEWER = streams.URGENCY_REVIEW

Scorer = Callable[[list[str]], Sequence[float]]
Recogniser = Callable[[list[str]], Sequence[Recognised]]
# How the reviewer records the category it files a raised ticket under (`category_source`).
HAZARD_SOURCE = "hazard"


class Filed(NamedTuple):
    """Where the store has a ticket filed: its category and who chose it (model, citizen, operator...)."""

    category: str | None
    source: str | None


@dataclass(frozen=True)
class Policy:
    threshold: float  # the e5 model's: a probability at or above it raises the ticket
    hazard_threshold: float  # the hazard kind model's: the confidence at or above which a raise is refiled
    hazards: Hazards
    max_age: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Reviewed:
    effects: list[Effects]  # one per event, empty when nothing changes
    outcomes: list[Outcome]
    scores: list[float | None]  # e5's probability, for the tickets it was asked about


def review_batch(
    events: Sequence[TicketClassified],
    texts: Sequence[str | None],
    urgencies: Sequence[str | None],
    filed: Sequence[Filed],
    *,
    score: Scorer,
    recognise: Recogniser,
    smell_only: Callable[[str], bool],
    policy: Policy,
    now: datetime,
) -> Reviewed:
    """`texts`: each ticket's report (title and text) as the store has it; `urgencies`: its urgency there
    (a retried batch finds the tickets it raised already raised); `filed`: its category there. `recognise`
    is asked only about the tickets raised and the classifier's emergencies, after `score` (the e5 wiring
    reuses the embeddings of the raised ones)."""
    outcomes: list[Outcome | None] = []
    asked: list[int] = []
    for i, (event, text, stored) in enumerate(zip(events, texts, urgencies, strict=True)):
        outcome = _skipped(event, text, stored, smell_only, policy, now)
        outcomes.append(outcome)
        if outcome is None:
            asked.append(i)
    scores: list[float | None] = [None] * len(events)
    if asked:
        for i, got in zip(asked, score([texts[i] or "" for i in asked]), strict=True):
            scores[i] = float(got)
    up = [
        i
        for i, (event, outcome, p) in enumerate(zip(events, outcomes, scores, strict=True))
        if (outcome is None and p is not None and p >= policy.threshold)
        or (outcome == "emergency" and event.urgency == "emergency" and filed[i].source != HAZARD_SOURCE)
    ]
    kinds = dict(zip(up, recognise([texts[i] or "" for i in up]) if up else [], strict=True))
    effects: list[Effects] = []
    done: list[Outcome] = []
    for i, (event, outcome, p) in enumerate(zip(events, outcomes, scores, strict=True)):
        change = reviewed(event, p, kinds[i], filed[i], policy, now) if i in kinds else Effects()
        effects.append(change)
        if outcome is None and i in kinds:
            done.append("raised")
        else:
            done.append("refiled" if change.writes else outcome or "kept")
    return Reviewed(effects, done, scores)


def _skipped(
    event: TicketClassified,
    text: str | None,
    stored: str | None,
    smell_only: Callable[[str], bool],
    policy: Policy,
    now: datetime,
) -> Outcome | None:
    if stored == "emergency" and event.urgency != "emergency":
        return "emergency"  # raised already (a retried batch)
    if event.duplicate_of:
        return "duplicate"
    if now - event.received_at > policy.max_age:
        return "too_old"
    if not text or not text.strip():
        return "no_text"
    if event.urgency == "emergency":
        return "emergency"  # the classifier's: not scored, asked its hazard only
    if smell_only(text):
        return "smell_only"
    return None


def refiled(hazard: Recognised, filed: Filed, event: TicketClassified, policy: Policy) -> str | None:
    """The category to file an emergency under, or None to keep its own: kept when an operator chose
    it, when its departments act on the hazard, or when the kind is not recognised confidently enough."""
    current = filed.category or event.category
    if filed.source == "operator" or policy.hazards.acts(hazard.kind, current):
        return None
    if hazard.confidence < policy.hazard_threshold:
        return None
    return policy.hazards.category(hazard.kind)


def reviewed(
    event: TicketClassified,
    score: float | None,
    hazard: Recognised,
    filed: Filed,
    policy: Policy,
    now: datetime,
) -> Effects:
    """A raise (`score`: e5's, at or above the threshold), filed under the hazard's category or kept under
    its own; or, for the classifier's emergency (`score` None), the refiling alone, or nothing."""
    previous = filed.category or event.category
    category = refiled(hazard, filed, event, policy)
    if score is None and category is None:
        return Effects()
    fields: dict[str, str | None] = {}
    history: dict[str, str | None] = {
        "at": iso(now),
        "event": "hazard_refiled",
        "hazard": hazard.kind,
        "hazard_confidence": f"{hazard.confidence:.2f}",
        "category": category,
        "previous_category": previous if category is not None else None,
    }
    summary, reason = [], []
    step, rerouted = "hazard-refiled", "hazard-rerouted"
    if score is not None:
        cue, step, rerouted = f"e5:{score:.2f}", "urgency-raised", "urgency-rerouted"
        fields |= {"urgency": "emergency", "urgency_cue": cue}
        history |= {
            "event": "urgency_raised",
            "urgency": "emergency",
            "urgency_cue": cue,
            "score": f"{score:.2f}",
        }
        summary.append(
            f"urgency {event.urgency} -> emergency: the e5 review scored it {score:.2f} "
            f"(threshold {policy.threshold:.2f})"
        )
        reason.append(f"urgency raised to emergency ({cue})")
    if category is not None:
        fields |= {"category": category, "category_source": HAZARD_SOURCE}
        summary.append(
            f"hazard {hazard.kind} ({hazard.confidence:.2f}): {previous} cannot act on it, "
            f"filed under {category}"
        )
        reason.append(f"hazard {hazard.kind}: {previous} -> {category}")
    else:
        summary.append(f"hazard {hazard.kind} ({hazard.confidence:.2f}): kept under {previous}")
    write = StoreWrite(
        ticket_id=event.ticket_id,
        event_id=derive_id(event.event_id, step),
        fields=fields,
        history=history | {"summary": "; ".join(summary)},
    )
    reroute = TicketRerouted(
        event_id=derive_id(event.event_id, rerouted),
        ticket_id=event.ticket_id,
        occurred_at=now,
        operator=REVIEWER,
        # No department: dispatch routes it again by its category, with the deadlines of its urgency.
        # The hazard's category is carried as an operator's correction is (the event says where it
        # went and why); without one, the category as it is now.
        department=None,
        category=category,
        reason="; ".join(reason),
    )
    return Effects(publish=[Publish(streams.REROUTED, reroute)], writes=[write])
