"""Possible false alarms with a fake scorer: an emergency whose text casts doubt and that e5 scores low is
marked for an operator, with its reason, and keeps its urgency; nothing else is asked about or changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.classifier.urgency import detector
from services.classifier.urgency_doubt import Doubted, DoubtPolicy, doubt_batch
from shared import streams
from shared.effects import SortedAdd
from shared.events import Place, TicketClassified
from shared.store import check_write, keys

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
POLICY = DoubtPolicy(below=0.1)
# The lexicon flags these; the first says no one is trapped, out of its negation's reach.
DOUBTFUL = "没人被困，电梯停在一楼不动了，麻烦物业找人修"
PLAIN = "GAS LEAK AT 45 PINE AVE PLEASE HURRY"  # e5 scored a real one 0.02 out of fold


def classified(
    ticket_id: str = "T1",
    urgency: str = "emergency",
    cue: str = "combo:人+不动了",
    age: timedelta = timedelta(minutes=2),
    **over: object,
) -> TicketClassified:
    return TicketClassified.model_validate(
        {
            "event_id": f"c-{ticket_id}",
            "ticket_id": ticket_id,
            "occurred_at": NOW,
            "category": "housing",
            "confidence": 0.8,
            "urgency": urgency,
            "urgency_cue": cue,
            "place": Place(),
            "model_version": "m",
            "received_at": NOW - age,
            **over,
        }
    )


class FakeScorer:
    """Scores every text `p`; records what it was asked."""

    def __init__(self, p: float = 0.02) -> None:
        self.p, self.asked = p, list[str]()

    def __call__(self, texts: list[str]) -> list[float]:
        self.asked += texts
        return [self.p] * len(texts)


def doubt(
    events: list[TicketClassified],
    texts: list[str | None],
    scorer: FakeScorer,
    answered: list[bool] | None = None,
) -> Doubted:
    return doubt_batch(
        events,
        texts,
        answered or [False] * len(events),
        score=scorer,
        doubts=detector().doubts,
        policy=POLICY,
        now=NOW,
    )


def test_words_that_cast_doubt_are_named_but_not_those_inside_a_cue() -> None:
    doubts = detector().doubts
    assert doubts(DOUBTFUL) == ["negation:没"]  # not the 不 of the state 不动了
    assert doubts("围墙差点倒了，吓死人") == ["near_miss:差点"]
    assert doubts("煤气泄漏了怎么办？") == ["question:?"]
    assert doubts(PLAIN) == [] and doubts("he is not breathing") == []


def test_a_doubted_emergency_is_marked_for_an_operator_and_keeps_its_urgency() -> None:
    scorer = FakeScorer(0.03)
    done = doubt([classified()], [DOUBTFUL], scorer)
    assert done.outcomes == ["doubted"] and done.scores == [0.03] and scorer.asked == [DOUBTFUL]
    (effects,) = done.effects
    assert effects.publish == ()  # not routed again: the deadlines stay the emergency's
    (write,) = effects.writes
    assert write.fields == {"urgency_doubt": "e5:0.03 没"}  # no "urgency": never lowered
    assert write.history is not None
    assert (write.history["event"], write.history["urgency"]) == ("urgency_doubted", "emergency")
    assert "possible false alarm" in write.history["summary"]
    assert write.ops == [SortedAdd(keys.review, "T1", (NOW - timedelta(minutes=2)).timestamp())]
    check_write(write, streams.CLASSIFIER)  # the reviewer writes as the classifier
    again = doubt([classified()], [DOUBTFUL], FakeScorer(0.03))  # a retry: the same id, applied once
    assert again.effects[0].writes[0].event_id == write.event_id


def test_e5_must_agree_and_a_plain_emergency_is_not_asked_about() -> None:
    scorer = FakeScorer(0.5)
    done = doubt([classified("T1"), classified("T2", cue="combo:gas+leak")], [DOUBTFUL, PLAIN], scorer)
    assert done.outcomes == ["not_doubted", "no_doubt_word"] and scorer.asked == [DOUBTFUL]
    assert all(e.writes == () for e in done.effects)


@pytest.mark.parametrize(
    "event",
    [
        classified(urgency="general", cue="none"),  # not an emergency: the raise's business
        classified(cue="e5:0.97"),  # raised by the reviewer itself
        classified(duplicate_of="T0"),
        classified(age=timedelta(minutes=61)),
    ],
)
def test_only_the_classifiers_recent_emergencies_are_asked_about(event: TicketClassified) -> None:
    scorer = FakeScorer()
    done = doubt([event], [DOUBTFUL], scorer)
    assert done.outcomes == ["not_asked"] and scorer.asked == [] and done.effects[0].writes == ()


def test_a_ticket_an_operator_has_answered_for_is_marked_but_not_queued_again() -> None:
    # Confirming the category took it off the queue; nothing would take a second entry off.
    done = doubt([classified()], [DOUBTFUL], FakeScorer(0.03), answered=[True])
    (write,) = done.effects[0].writes
    assert done.outcomes == ["doubted"] and write.fields == {"urgency_doubt": "e5:0.03 没"}
    assert write.ops == []
