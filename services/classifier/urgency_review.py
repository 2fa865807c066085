"""The urgency review: a second opinion on classified tickets that can only raise them to `emergency`.

Plain functions; the wiring (`review`) reads the tickets' texts and runs `review_batch` in a thread, since
the e5 model behind `score` costs 11-250 ms of CPU a text. A ticket is asked about unless it is already an
emergency, a duplicate (dispatch closes it; its original is what is worked), received more than `max_age`
ago (past the one-hour emergency deadline, raising it helps no one: it is counted instead), or about a smell
and nothing else (the city's policy: a lingering odour is not an emergency; the lexicon alone decides when
a smell makes one). At or above the model's threshold, the ticket is raised: urgency `emergency`, the cue
"e5:0.97", a history entry, and a TicketRerouted (no department, the category as it is) so dispatch routes
it again with the emergency deadlines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from shared import streams
from shared.effects import Effects, Publish, StoreWrite
from shared.events import TicketClassified, TicketRerouted
from shared.ids import derive_id
from shared.store import iso

Outcome = Literal["raised", "kept", "emergency", "duplicate", "too_old", "smell_only", "no_text"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# Who re-routes a raised ticket, as dispatch records it (`rerouted_by`).
REVIEWER = streams.URGENCY_REVIEW

Scorer = Callable[[list[str]], Sequence[float]]


@dataclass(frozen=True)
class Policy:
    threshold: float  # the e5 model's: a probability at or above it raises the ticket
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
    *,
    score: Scorer,
    smell_only: Callable[[str], bool],
    policy: Policy,
    now: datetime,
) -> Reviewed:
    """`texts`: each ticket's report (title and text) as the store has it; `urgencies`: its urgency there
    (a retried batch finds the tickets it raised already raised)."""
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
    effects: list[Effects] = []
    done: list[Outcome] = []
    for event, outcome, p in zip(events, outcomes, scores, strict=True):
        if outcome is None and p is not None and p >= policy.threshold:
            effects.append(raised(event, p, policy, now))
            done.append("raised")
        else:
            effects.append(Effects())
            done.append(outcome or "kept")
    return Reviewed(effects, done, scores)


def _skipped(
    event: TicketClassified,
    text: str | None,
    stored: str | None,
    smell_only: Callable[[str], bool],
    policy: Policy,
    now: datetime,
) -> Outcome | None:
    if event.urgency == "emergency" or stored == "emergency":
        return "emergency"
    if event.duplicate_of:
        return "duplicate"
    if now - event.received_at > policy.max_age:
        return "too_old"
    if not text or not text.strip():
        return "no_text"
    if smell_only(text):
        return "smell_only"
    return None


def raised(event: TicketClassified, score: float, policy: Policy, now: datetime) -> Effects:
    cue = f"e5:{score:.2f}"
    write = StoreWrite(
        ticket_id=event.ticket_id,
        event_id=derive_id(event.event_id, "urgency-raised"),
        fields={"urgency": "emergency", "urgency_cue": cue},
        history={
            "at": iso(now),
            "event": "urgency_raised",
            "summary": f"urgency {event.urgency} -> emergency: the e5 review scored it {score:.2f} "
            f"(threshold {policy.threshold:.2f})",
            "urgency": "emergency",
            "urgency_cue": cue,
            "score": f"{score:.2f}",
        },
    )
    reroute = TicketRerouted(
        event_id=derive_id(event.event_id, "urgency-rerouted"),
        ticket_id=event.ticket_id,
        occurred_at=now,
        operator=REVIEWER,
        # No department: dispatch routes it again by its category as it is now (an operator may have
        # corrected it since it was classified), with the deadlines of its urgency.
        department=None,
        reason=f"urgency raised to emergency ({cue})",
    )
    return Effects(publish=[Publish(streams.REROUTED, reroute)], writes=[write])
