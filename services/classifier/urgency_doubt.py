"""Possible false alarms: emergencies the urgency reviewer doubts, shown to an operator, never lowered.

The lexicon's false alarms are reports that mention a hazard but say it is over, elsewhere, imagined or a
figure of speech in words its take-backs do not reach ("没人被困，电梯停在一楼不动了", "ref 20931 about the
leaning fence, it hasn't fallen"). e5 scores most of them near zero, but it also scores a few real
emergencies that low ("GAS LEAK AT 45 PINE AVE PLEASE HURRY": 0.02 out of fold), so a lowering by e5 would
cost recall (bench/urgency_fa.py). The reviewer therefore only *marks* a ticket the classifier called an
emergency when both say so: the text holds a word that casts doubt (`Detector.doubts`: a negation, past
time, repair, question... that took no cue back) and e5 scores it below `DOUBT_BELOW`. The mark is the
field `urgency_doubt` (the reason), a history entry `urgency_doubted`, and the ticket on the console's
review queue (emergencies first); the ticket keeps its urgency and its one-hour deadline until an operator
who has read it decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.effects import Effects, SortedAdd, StoreWrite
from shared.events import TicketClassified
from shared.ids import derive_id
from shared.store import iso, keys

# Chosen by 5-fold cross-validation over the 2,072 training rows (bench/urgency_fa.py): the loosest of a grid
# at which at most 0.5% of the emergencies the detector flags hold a doubting word and score below it (0.2 on
# four folds and on all rows, 0.3 on one). Out of fold it marked 9 of the 27 false alarms the detector still
# raises and 3 of its 892 emergencies; with the lexicon before the false-alarm fixes, 33 of 61.
DOUBT_BELOW = 0.2
# How many doubting words the reason names.
_REASONS = 3

Doubt = Literal["doubted", "not_doubted", "no_doubt_word", "not_asked"]
Scorer = Callable[[list[str]], Sequence[float]]


@dataclass(frozen=True)
class DoubtPolicy:
    below: float = DOUBT_BELOW  # e5's probability under which a doubted emergency is marked
    max_age: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Doubted:
    effects: list[Effects]  # one per event, empty when nothing is marked
    outcomes: list[Doubt]
    scores: list[float | None]  # e5's probability, for the tickets it was asked about


def doubt_batch(
    events: Sequence[TicketClassified],
    texts: Sequence[str | None],
    answered: Sequence[bool],
    *,
    score: Scorer,
    doubts: Callable[[str], list[str]],
    policy: DoubtPolicy,
    now: datetime,
) -> Doubted:
    """Asks e5 about the tickets the classifier called emergencies whose texts hold a doubting word (not
    those the reviewer raised itself, duplicates, or tickets past the hour). `answered`: an operator has
    answered for the ticket on the review queue already (confirmed or corrected its category); its mark is
    kept on the ticket and in its history, not put back on the queue, where nothing would take it off."""
    words: list[list[str]] = []
    outcomes: list[Doubt] = []
    for event, text in zip(events, texts, strict=True):
        eligible = bool(text) and _eligible(event, policy, now)
        words.append(doubts(text or "") if eligible else [])
        outcomes.append("not_doubted" if words[-1] else "no_doubt_word" if eligible else "not_asked")
    asked = [i for i, found in enumerate(words) if found]
    scores: list[float | None] = [None] * len(events)
    if asked:
        for i, got in zip(asked, score([texts[i] or "" for i in asked]), strict=True):
            scores[i] = float(got)
    effects: list[Effects] = []
    for i, (event, found, p, done) in enumerate(zip(events, words, scores, answered, strict=True)):
        if p is not None and p < policy.below:
            effects.append(marked(event, p, found, policy, now, queue=not done))
            outcomes[i] = "doubted"
        else:
            effects.append(Effects())
    return Doubted(effects, outcomes, scores)


def _eligible(event: TicketClassified, policy: DoubtPolicy, now: datetime) -> bool:
    return (
        event.urgency == "emergency"
        and not (event.urgency_cue or "").startswith("e5:")
        and not event.duplicate_of
        and now - event.received_at <= policy.max_age
    )


def marked(
    event: TicketClassified,
    score: float,
    words: list[str],
    policy: DoubtPolicy,
    now: datetime,
    queue: bool = True,
) -> Effects:
    said = ", ".join(w.split(":", 1)[1] for w in words[:_REASONS])
    reason = f"e5:{score:.2f} {said}"
    write = StoreWrite(
        ticket_id=event.ticket_id,
        event_id=derive_id(event.event_id, "urgency-doubted"),
        fields={"urgency_doubt": reason},
        history={
            "at": iso(now),
            "event": "urgency_doubted",
            "summary": f"possible false alarm: the text says {said!r} and the e5 review scored it "
            f"{score:.2f} (below {policy.below:.2f}); the urgency stays {event.urgency} "
            f"({event.urgency_cue}) until an operator decides",
            "urgency": event.urgency,
            "urgency_cue": event.urgency_cue or "",
            "urgency_doubt": reason,
            "score": f"{score:.2f}",
        },
        # On the review queue, where emergencies come first, for an operator to read.
        ops=[SortedAdd(keys.review, event.ticket_id, event.received_at.timestamp())] if queue else [],
    )
    return Effects(writes=[write])
