"""The urgency review's handler with a fake scorer: it raises, never lowers, and skips what it must; a raise
files the ticket under the category that acts on the hazard recognised (a fake recogniser)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.classifier.hazard_kind import Recognised
from services.classifier.hazards import load
from services.classifier.urgency import detector
from services.classifier.urgency_review import Filed, Policy, Reviewed, review_batch
from shared import streams
from shared.events import Place, TicketClassified, TicketRerouted
from shared.store import check_write

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
POLICY = Policy(threshold=0.9, hazard_threshold=0.8, hazards=load())
GAS = "my neighbour's kitchen: a hissing sound from the pipe and everyone feels dizzy"
HARMLESS = "the street light outside number 12 has been off for a week"
ODOUR = "Strong odor coming from the restaurant exhaust every night"
GAS_FOUND = Recognised("gas", 0.95)


def classified(
    ticket_id: str = "T1", urgency: str = "general", age: timedelta = timedelta(minutes=2), **over: object
) -> TicketClassified:
    return TicketClassified.model_validate(
        {
            "event_id": f"c-{ticket_id}",
            "ticket_id": ticket_id,
            "occurred_at": NOW,
            "category": "environment",
            "confidence": 0.8,
            "urgency": urgency,
            "urgency_cue": "none",
            "place": Place(district="east"),
            "model_version": "m",
            "received_at": NOW - age,
            **over,
        }
    )


class FakeScorer:
    """Scores a text 0.97 if it holds "hissing" or "odor" (e5 does not know the odour policy), else 0.1;
    records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, texts: list[str]) -> list[float]:
        self.asked += texts
        return [0.97 if "hissing" in t or "odor" in t else 0.1 for t in texts]


class FakeRecogniser:
    """Recognises gas at 0.95 in every text; records what it was asked."""

    def __init__(self, found: Recognised = GAS_FOUND) -> None:
        self.found = found
        self.asked: list[str] = []

    def __call__(self, texts: list[str]) -> list[Recognised]:
        self.asked += texts
        return [self.found] * len(texts)


def review(
    events: list[TicketClassified],
    texts: list[str | None],
    urgencies: list[str | None] | None = None,
    scorer: Callable[[list[str]], list[float]] | None = None,
    now: datetime = NOW,
    filed: list[Filed] | None = None,
    recogniser: FakeRecogniser | None = None,
) -> Reviewed:
    return review_batch(
        events,
        texts,
        urgencies or [e.urgency for e in events],
        filed or [Filed(e.category, "model") for e in events],
        score=scorer or FakeScorer(),
        recognise=recogniser or FakeRecogniser(),
        smell_only=detector().smell_only,
        policy=POLICY,
        now=now,
    )


def run(
    events: list[TicketClassified], texts: list[str | None], urgencies: list[str | None] | None = None
) -> tuple[FakeScorer, list[str], list[object]]:
    scorer = FakeScorer()
    done = review(events, texts, urgencies, scorer)
    return scorer, list(done.outcomes), list(done.effects)


def test_a_ticket_the_model_calls_an_emergency_is_raised_and_routed_again() -> None:
    # Filed under utilities, whose departments act on gas: the category stays.
    done = review([classified(category="utilities")], [GAS], ["general"])
    assert done.outcomes == ["raised"] and done.scores == [0.97]
    (effects,) = done.effects
    (write,) = effects.writes
    assert write.fields == {"urgency": "emergency", "urgency_cue": "e5:0.97"}
    assert write.history is not None
    assert (write.history["event"], write.history["score"]) == ("urgency_raised", "0.97")
    assert (write.history["hazard"], write.history["category"]) == ("gas", None)
    assert "kept under utilities" in str(write.history["summary"])
    check_write(write, streams.CLASSIFIER)  # the reviewer writes as the classifier, the owner of urgency
    (publish,) = effects.publish
    assert publish.stream == streams.REROUTED
    reroute = publish.event
    assert isinstance(reroute, TicketRerouted)
    assert (reroute.ticket_id, reroute.department, reroute.category) == ("T1", None, None)
    assert reroute.operator == "urgency-review" and "e5:0.97" in (reroute.reason or "")
    # A retry derives the same ids: the store applies the write once, dispatch re-routes once.
    again = review([classified(category="utilities")], [GAS], ["general"], now=NOW + timedelta(seconds=5))
    assert again.effects[0].writes[0].event_id == write.event_id
    assert again.effects[0].publish[0].event.event_id == reroute.event_id


@pytest.mark.parametrize("urgency", ["general", "utilities", "complex"])
def test_a_ticket_the_model_does_not_call_an_emergency_keeps_its_urgency(urgency: str) -> None:
    scorer, outcomes, effects = run([classified(urgency=urgency)], [HARMLESS])
    assert outcomes == ["kept"] and scorer.asked == [HARMLESS]
    assert effects[0].writes == () and effects[0].publish == ()  # type: ignore[attr-defined]


def test_emergencies_are_never_scored_nor_lowered() -> None:
    # By the classifier (asked its hazard only: chemical, which environment's departments act on), or
    # raised already (a retried batch finds the store's urgency raised: not asked again).
    scorer, recogniser = FakeScorer(), FakeRecogniser(Recognised("chemical", 0.95))
    done = review(
        [classified("T1", urgency="emergency"), classified("T2")],
        [HARMLESS, GAS],
        ["emergency", "emergency"],
        scorer,
        recogniser=recogniser,
    )
    assert done.outcomes == ["emergency", "emergency"] and scorer.asked == []
    assert recogniser.asked == [HARMLESS]
    assert all(e.writes == () and e.publish == () for e in done.effects)


def test_tickets_received_more_than_an_hour_ago_are_skipped() -> None:
    scorer, outcomes, _ = run(
        [classified("T1", age=timedelta(minutes=61)), classified("T2", age=timedelta(minutes=59))], [GAS, GAS]
    )
    assert outcomes == ["too_old", "raised"] and scorer.asked == [GAS]


def test_smell_only_texts_duplicates_and_empty_texts_are_skipped() -> None:
    events = [classified("T1"), classified("T2", duplicate_of="T0"), classified("T3"), classified("T4")]
    scorer, outcomes, _ = run(events, [ODOUR, GAS, None, GAS])
    assert outcomes == ["smell_only", "duplicate", "no_text", "raised"]
    assert scorer.asked == [GAS]


def test_only_the_tickets_to_ask_about_are_scored_in_one_call_in_order() -> None:
    calls: list[list[str]] = []

    def score(texts: list[str]) -> list[float]:
        calls.append(texts)
        return [0.95, 0.2]

    done = review(
        [classified("T1", urgency="emergency"), classified("T2"), classified("T3")],
        [GAS, "first", "second"],
        ["emergency", "general", "general"],
        score,
        recogniser=FakeRecogniser(Recognised("chemical", 0.95)),
    )
    assert calls == [["first", "second"]]
    assert done.outcomes == ["emergency", "raised", "kept"] and done.scores == [None, 0.95, 0.2]


def test_the_reviewer_process_runs_on_idle_cpu_only() -> None:
    # In a child process: the policy would stay with the test run's own thread.
    # A thread started before (as the imports start numpy's) is moved too, and one started after inherits.
    code = (
        "import os, threading; from services.classifier.review import yield_cpu; "
        "before = threading.Event(); t = threading.Thread(target=before.wait); t.start(); "
        "print(yield_cpu(10)); after = threading.Thread(target=before.wait); after.start(); "
        "print(all(os.sched_getscheduler(int(n)) == os.SCHED_IDLE for n in os.listdir('/proc/self/task'))); "
        "before.set()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["SCHED_IDLE", "True"]


def test_a_raise_is_filed_under_the_category_that_acts_on_the_hazard() -> None:
    # A stroke the classifier filed under utilities: its departments cannot act on a medical emergency.
    recogniser = FakeRecogniser(Recognised("medical", 0.97))
    done = review([classified(category="utilities")], [GAS], recogniser=recogniser)
    assert recogniser.asked == [GAS]
    (effects,) = done.effects
    (write,) = effects.writes
    assert write.fields == {
        "urgency": "emergency",
        "urgency_cue": "e5:0.97",
        "category": "health",
        "category_source": "hazard",
    }
    check_write(write, streams.CLASSIFIER)  # category and its source are the classifier's too
    assert write.history is not None
    assert write.history["hazard"] == "medical" and write.history["hazard_confidence"] == "0.97"
    assert (write.history["previous_category"], write.history["category"]) == ("utilities", "health")
    reroute = effects.publish[0].event
    assert isinstance(reroute, TicketRerouted)
    assert (reroute.department, reroute.category) == (None, "health")
    assert "medical" in (reroute.reason or "") and "utilities -> health" in (reroute.reason or "")


@pytest.mark.parametrize(
    ("found", "filed", "why"),
    [
        (Recognised("medical", 0.7), Filed("utilities", "model"), "below the hazard threshold"),
        (Recognised("medical", 0.97), Filed("utilities", "operator"), "an operator chose the category"),
        (Recognised("medical", 0.97), Filed("public_safety", "model"), "emergency management acts on it"),
    ],
)
def test_a_raise_keeps_its_category(found: Recognised, filed: Filed, why: str) -> None:
    done = review([classified()], [GAS], filed=[filed], recogniser=FakeRecogniser(found))
    (write,) = done.effects[0].writes
    assert "category" not in write.fields, why
    reroute = done.effects[0].publish[0].event
    assert isinstance(reroute, TicketRerouted) and reroute.category is None, why


def test_the_category_of_the_store_is_the_one_judged() -> None:
    # Classified environment; the store has it under health since (the category judged is the current one).
    done = review(
        [classified()],
        [GAS],
        filed=[Filed("health", "model")],
        recogniser=FakeRecogniser(Recognised("medical", 0.97)),
    )
    assert "category" not in done.effects[0].writes[0].fields


def test_only_raised_tickets_are_asked_their_hazard() -> None:
    recogniser = FakeRecogniser()
    review([classified("T1"), classified("T2")], [HARMLESS, GAS], recogniser=recogniser)
    assert recogniser.asked == [GAS]
    nothing = FakeRecogniser()
    review([classified("T1")], [HARMLESS], recogniser=nothing)
    assert nothing.asked == []


def test_the_classifiers_own_emergency_is_refiled_under_the_category_that_acts_on_its_hazard() -> None:
    # The lexicon found the emergency, the classifier filed it under environment: a gas leak goes to the
    # utilities' departments. Not scored, urgency untouched.
    scorer = FakeScorer()
    done = review([classified(urgency="emergency")], [GAS], scorer=scorer)
    assert done.outcomes == ["refiled"] and scorer.asked == []
    (write,) = done.effects[0].writes
    assert write.fields == {"category": "utilities", "category_source": "hazard"}
    assert write.history is not None and write.history["event"] == "hazard_refiled"
    assert "urgency" not in write.history and "environment cannot act on it" in str(write.history["summary"])
    check_write(write, streams.CLASSIFIER)
    reroute = done.effects[0].publish[0].event
    assert isinstance(reroute, TicketRerouted) and reroute.category == "utilities"
    assert reroute.reason == "hazard gas: environment -> utilities"
    # Refiled already (a retried batch): not asked again; too old, a duplicate: not asked.
    recogniser = FakeRecogniser()
    again = review(
        [
            classified("T1", urgency="emergency"),
            classified("T2", urgency="emergency", age=timedelta(minutes=61)),
            classified("T3", urgency="emergency", duplicate_of="T0"),
        ],
        [GAS, GAS, GAS],
        filed=[Filed("utilities", "hazard"), Filed("environment", "model"), Filed("environment", "model")],
        recogniser=recogniser,
    )
    assert again.outcomes == ["emergency", "too_old", "duplicate"] and recogniser.asked == []


def test_dust_without_a_hazards_object_is_not_asked_about() -> None:
    # A nuisance like an odour ("concrete saw cutting causing dust", 工地扬尘); with a hazard's object
    # (the wall) e5 is asked.
    dust, wall = "CONCRETE SAW CUTTING CAUSING DUST.", "a wall near the site leaning badly, dust everywhere"
    scorer, outcomes, _ = run(
        [classified("T1"), classified("T2"), classified("T3")], [dust, "工地扬尘很大", wall]
    )
    assert outcomes[:2] == ["smell_only", "smell_only"] and scorer.asked == [wall]
