"""The classifier's handler steps with a fake model and in-memory duplicate candidates (no Redis)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.classifier import duplicates
from services.classifier.app import ClassifierSettings
from services.classifier.duplicates import Bucket, Candidate
from services.classifier.handlers import analyse, decide, wanted_buckets
from services.classifier.place import default_gazetteer
from shared import streams
from shared.effects import Effects
from shared.events import Location, TicketClassified, TicketReceived, TicketReview

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
POLICY = duplicates.Policy(window_seconds=72 * 3600, threshold=0.5, max_candidates=100)
LEAK = "湖滨路18号楼下的自来水管爆了，水一直往外冒，整个小区停水"
LEAK_AGAIN = "湖滨路18号楼下自来水管爆了，水一直在往外冒，小区停水了"
NOISE = "湖滨路的酒吧每天晚上音乐声很大，吵得睡不着觉"


@dataclass(frozen=True)
class FakePrediction:
    category: str
    confidence: float
    alternatives: list[tuple[str, float]]


class FakeModel:
    """Answers by keyword; records each call so tests see one predict per batch."""

    version = "fake-1"

    def __init__(self, confidence: float = 0.9) -> None:
        self.confidence = confidence
        self.calls: list[list[str]] = []

    def predict(self, texts: list[str]) -> list[FakePrediction]:
        self.calls.append(texts)
        out = []
        for text in texts:
            category = "utilities" if ("水" in text or "water" in text) else "environment"
            out.append(FakePrediction(category, self.confidence, [(category, self.confidence)]))
        return out


def received(
    ticket_id: str,
    text: str,
    at: datetime = T0,
    location: Location | None = None,
    title: str | None = None,
) -> TicketReceived:
    return TicketReceived(
        event_id=f"e-{ticket_id}",
        ticket_id=ticket_id,
        occurred_at=at,
        channel="telephony",
        source_id=ticket_id,
        text=text,
        title=title,
        received_at=at,
        location=location,
    )


def classify(
    events: list[TicketReceived],
    model: FakeModel | None = None,
    candidates: Mapping[Bucket, Sequence[Candidate]] | None = None,
    review_below: float = 0.5,
) -> list[Effects]:
    model = model or FakeModel()
    analyses = analyse(events, model=model, gazetteer=default_gazetteer())
    return decide(
        analyses, candidates=candidates or {}, policy=POLICY, review_below=review_below, version=model.version
    )


def event_of(effects: Effects) -> TicketClassified:
    event = effects.publish[0].event
    assert isinstance(event, TicketClassified)
    return event


def indexed(
    ticket_id: str, text: str, at: datetime = T0, street: str | None = None, open: bool = True
) -> Candidate:
    return Candidate(ticket_id, at.timestamp(), street, duplicates.signature(text), open)


def test_one_predict_per_batch_and_one_classified_event_each() -> None:
    model = FakeModel()
    effects = classify([received("T1", "停水了"), received("T2", "noise", title="loud")], model=model)
    assert model.calls == [["停水了", "loud\nnoise"]]
    assert [[p.stream for p in e.publish] for e in effects] == [[streams.CLASSIFIED], [streams.CLASSIFIED]]
    first = event_of(effects[0])
    assert (first.category, first.model_version, first.received_at) == ("utilities", "fake-1", T0)
    assert first.language == "zh" and event_of(effects[1]).language == "en"
    assert effects[0].writes[0].fields["model_version"] == "fake-1"


def test_low_confidence_also_goes_to_review() -> None:
    [effects] = classify([received("T1", "noise")], model=FakeModel(confidence=0.3))
    assert [p.stream for p in effects.publish] == [streams.CLASSIFIED, streams.REVIEW]
    assert isinstance(effects.publish[1].event, TicketReview)
    assert effects.writes[0].fields["needs_review"] == "1"


def chosen(ticket_id: str, text: str, service_code: str) -> TicketReceived:
    return received(ticket_id, text).model_copy(update={"channel": "open311", "service_code": service_code})


def test_the_citizen_s_category_is_kept_unless_the_model_is_sure_it_is_wrong() -> None:
    """A category the citizen chose is evidence: a model unsure enough to ask for review (0.20, as in
    issue 15) must not send an environment report to the labour bureau."""
    unsure = FakeModel(confidence=0.2)
    [effects] = classify([chosen("T1", "noise at night", "public_safety")], model=unsure)
    event = event_of(effects)
    assert event.category == "public_safety" and event.confidence == 0.0  # the model's for that category
    assert [p.stream for p in effects.publish] == [streams.CLASSIFIED, streams.REVIEW]
    assert effects.writes[0].fields["category_source"] == "citizen"
    summary = effects.writes[0].history["summary"] if effects.writes[0].history else ""
    assert "the citizen's choice kept (the model said environment 0.20)" in summary
    fairly_sure = classify(
        [chosen("T2", "noise at night", "public_safety")], model=FakeModel(confidence=0.85)
    )
    assert event_of(fairly_sure[0]).category == "public_safety"
    sure = classify([chosen("T3", "noise at night", "public_safety")], model=FakeModel(confidence=0.95))
    assert event_of(sure[0]).category == "environment"
    assert sure[0].writes[0].fields["category_source"] == "model"
    agreeing = classify([chosen("T4", "noise at night", "environment")], model=FakeModel(confidence=0.3))
    assert event_of(agreeing[0]).confidence == 0.3


def test_the_override_threshold_is_never_below_the_review_threshold() -> None:
    with pytest.raises(ValidationError, match="at least review_below"):
        ClassifierSettings(review_below=0.6, override_citizen_category_confidence=0.5)
    assert ClassifierSettings().override_citizen_category_confidence == 0.9


def test_event_ids_are_deterministic_so_retries_republish_the_same_ids() -> None:
    a = event_of(classify([received("T1", "x")])[0])
    b = event_of(classify([received("T1", "x")])[0])
    assert a.event_id == b.event_id != "e-T1"


def test_urgency_names_the_cue_that_fired_and_lands_on_the_ticket() -> None:
    gas, outage, plain = classify(
        [
            received("T1", "楼道里煤气泄漏了，请马上派人"),
            received("T2", "Power outage on the whole block since noon"),
            received("T3", "The bar plays loud music every night"),
        ]
    )
    assert (event_of(gas).urgency, event_of(gas).urgency_cue) == ("emergency", "combo:煤气+泄漏")
    assert (event_of(outage).urgency, event_of(outage).urgency_cue) == ("utilities", "keyword:power outage")
    assert (event_of(plain).urgency, event_of(plain).urgency_cue) == ("general", "none")
    assert gas.writes[0].fields["urgency"] == "emergency"
    assert gas.writes[0].fields["urgency_cue"] == "combo:煤气+泄漏"
    assert plain.writes[0].fields["urgency_cue"] == "none"


def test_place_from_coordinates_from_text_or_address_and_unknown_stays_unknown() -> None:
    by_point, by_text, by_address, nowhere = classify(
        [
            received("T1", "路灯坏了", location=Location(lat=30.15, lon=120.15)),
            received("T2", "西山区松林街道的路灯坏了"),
            received("T3", "路灯坏了", location=Location(address="Wharf Street 3, Nangang")),
            received("T4", "人民路的路灯坏了", location=Location(lat=39.9, lon=116.4)),
        ]
    )
    assert event_of(by_point).place.model_dump() == {
        "district": "donghu",
        "street": None,
        "source": "coordinates",
    }
    assert event_of(by_text).place.model_dump() == {
        "district": "xishan",
        "street": "xishan_songlin",
        "source": "text",
    }
    assert event_of(by_address).place.district == "nangang"
    assert event_of(nowhere).place.model_dump() == {"district": None, "street": None, "source": "unknown"}
    fields = by_text.writes[0].fields
    assert (fields["district"], fields["street"], fields["place_source"]) == (
        "xishan",
        "xishan_songlin",
        "text",
    )
    # Unknown place: nothing to compare with, nothing indexed.
    assert not nowhere.writes[0].ops and duplicates.SIGNATURE_FIELD not in nowhere.writes[0].fields


def test_a_repeat_of_an_open_ticket_in_the_same_district_and_category_is_linked() -> None:
    earlier = indexed("T0", LEAK, T0 - timedelta(hours=5), street="donghu_hubin")
    [effects] = classify([received("T1", LEAK_AGAIN)], candidates={("donghu", "utilities"): [earlier]})
    event = event_of(effects)
    assert event.duplicate_of == "T0"
    assert "repeats T0" in (effects.writes[0].history or {})["summary"]
    # A repeat is not indexed itself, so later repeats link to the first ticket.
    assert not effects.writes[0].ops


def test_no_link_when_closed_too_old_dissimilar_another_street_or_received_later() -> None:
    bucket = ("donghu", "utilities")
    cases = [
        indexed("T0", LEAK, T0 - timedelta(hours=1), open=False),
        indexed("T0", LEAK, T0 - timedelta(hours=73)),
        indexed("T0", "湖滨路停水了，请尽快处理", T0 - timedelta(hours=1)),
        indexed("T0", LEAK, T0 - timedelta(hours=1), street="donghu_wenhua"),
        indexed("T0", LEAK, T0 + timedelta(minutes=1)),
    ]
    for candidate in cases:
        [effects] = classify([received("T1", LEAK_AGAIN)], candidates={bucket: [candidate]})
        assert event_of(effects).duplicate_of is None, candidate
        assert effects.writes[0].ops[0].key == duplicates.bucket_key(bucket)


def test_other_category_or_district_is_never_compared() -> None:
    earlier = indexed("T0", LEAK, T0 - timedelta(hours=1))
    effects = classify(
        [received("T1", NOISE), received("T2", LEAK_AGAIN.replace("湖滨路", "松林路"))],
        candidates={("donghu", "utilities"): [earlier]},
    )
    assert [event_of(e).duplicate_of for e in effects] == [None, None]


def test_a_redelivered_ticket_never_repeats_itself() -> None:
    itself = indexed("T1", LEAK_AGAIN, T0)
    [effects] = classify([received("T1", LEAK_AGAIN)], candidates={("donghu", "utilities"): [itself]})
    assert event_of(effects).duplicate_of is None


def test_within_a_batch_the_later_ticket_repeats_the_earlier_whatever_the_order() -> None:
    later = received("T2", LEAK_AGAIN, T0 + timedelta(minutes=3))
    first = received("T1", LEAK, T0)
    effects = classify([later, first])
    assert [event_of(e).duplicate_of for e in effects] == ["T1", None]
    analyses = analyse([later, first], model=FakeModel(), gazetteer=default_gazetteer())
    assert wanted_buckets(analyses, POLICY) == {
        ("donghu", "utilities"): T0.timestamp() - POLICY.window_seconds
    }


def test_signatures_round_trip_and_estimate_similarity() -> None:
    sig = duplicates.signature(LEAK)
    decoded = duplicates.decode_signature(duplicates.encode_signature(sig))
    assert decoded is not None and (decoded == sig).all()
    assert duplicates.similarity(sig, duplicates.signature(LEAK)) == 1.0
    assert duplicates.similarity(sig, duplicates.signature(LEAK_AGAIN)) > 0.5
    assert duplicates.similarity(sig, duplicates.signature(NOISE)) < 0.3
    assert duplicates.decode_signature("not base64!") is None
    assert duplicates.decode_signature("AAAA") is None
