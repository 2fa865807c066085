"""The urgency reviewer with the real e5 models on a real Redis, then dispatch: a general ticket whose text is
an emergency is raised, filed under the category that acts on its hazard and routed again within the hour;
the classifier's own emergency is refiled by its hazard; a harmless one is left as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from redis.asyncio import Redis

from services.classifier.review import ReviewSettings, build, e5_scorer
from services.classifier.urgency_e5 import DEFAULT_MODEL
from services.classifier.urgency_review import Scorer
from shared import streams
from shared.bus import as_str
from shared.codec import DATA_FIELD, pack
from shared.contract import INTAKE
from shared.effects import StoreWrite
from shared.events import Place, TicketClassified, utcnow
from shared.store import TicketStore, iso, keys
from shared.worker import Worker
from tests.integration.dispatch_support import Harness

pytestmark = pytest.mark.redis

# The lexicon misses it (no hazard object with its state), e5 does not.
FIRE = "there is smoke and a burning smell in the hallway"
HARMLESS = "the street light outside number 12 has been off for a week"
# The classifier's own emergency (its lexicon: a gas object and a leak state), filed under environment.
GAS = "the gas pipe in the kitchen is leaking and hissing"
ROUTING = """\
timezone: UTC
coordinator: coord
fallback: coord
departments:
  - {id: coord, name: Coordinator}
  - {id: parks, name: Parks, categories: [environment], capacity: 200}
  - {id: rescue, name: Emergency management, categories: [public_safety], capacity: 200}
  - {id: gasco, name: Gas company, categories: [utilities], capacity: 200}
rules:
  - {category: utilities, department: gasco, priority: 10}
  - {category: environment, department: parks, priority: 10}
  - {category: public_safety, department: rescue, priority: 10}
"""


@pytest.fixture(scope="module")
def e5() -> tuple[Scorer, float]:
    """The shipped model with its engine, loaded once for the module (a few seconds)."""
    return e5_scorer(DEFAULT_MODEL)


@pytest.fixture
async def reviewer(redis: Redis, redis_url: str, e5: tuple[Scorer, float]) -> AsyncIterator[Worker]:
    worker, _ = build(ReviewSettings(redis_url=redis_url), scorer=e5)
    yield worker
    await worker.redis.aclose()


async def received(
    redis: Redis, n: int, text: str, urgency: str = "general", cue: str = "none"
) -> TicketClassified:
    """A ticket as intake and the classifier left it: its text in the store, classified `general` (or as
    told)."""
    at = utcnow() - timedelta(minutes=5)
    await TicketStore(redis).apply(
        StoreWrite(f"T{n}", f"r{n}", fields={"text": text, "received_at": iso(at), "status": "received"}),
        scope=INTAKE,
    )
    return TicketClassified(
        event_id=f"c{n}",
        ticket_id=f"T{n}",
        occurred_at=at,
        category="environment",
        confidence=0.8,
        urgency=urgency,
        urgency_cue=cue,
        place=Place(),
        model_version="m",
        received_at=at,
    )


async def run(redis: Redis, worker: Worker, group: str, stream: str) -> None:
    """One batch of `group` over what `stream` holds, as the worker's read loop would."""
    consumer = next(c for c in worker.consumers if c.stream == stream and c.group == group)
    reply = await redis.xreadgroup(group, "w1", {stream: ">"}, count=100)
    result = await worker.process(consumer, list(reply[0][1]))
    assert not result.dead and not result.retry, result


async def test_an_emergency_in_other_words_is_raised_and_dispatched_again_within_the_hour(
    redis: Redis, reviewer: Worker, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING, encoding="utf-8")
    dispatch = Harness(redis, routing)
    events = [
        await received(redis, 1, FIRE),
        await received(redis, 2, HARMLESS),
        await received(redis, 3, GAS, urgency="emergency"),
    ]
    await dispatch.feed(streams.CLASSIFIED, *events)  # dispatched as general: 24 hours
    first = {d.ticket_id: d for d in await dispatch.dispatched()}
    assert first["T1"].dispatch_due_at == events[0].received_at + timedelta(hours=24)

    await run(redis, reviewer, streams.URGENCY_REVIEW, streams.CLASSIFIED)
    store = TicketStore(redis)
    fire, harmless = await store.get("T1"), await store.get("T2")
    assert fire is not None and harmless is not None
    assert fire.urgency == "emergency" and str(fire.urgency_cue).startswith("e5:0.9")  # type: ignore[attr-defined]
    assert harmless.urgency == "general"
    assert fire.category == "public_safety"  # environment's departments cannot act on a fire
    history = {h["event"]: h for h in await store.history("T1")}
    assert history["urgency_raised"]["hazard"] == "fire"
    assert "urgency_raised" not in [h["event"] for h in await store.history("T2")]
    gas = await store.get("T3")
    assert gas is not None and gas.category == "utilities" and gas.urgency == "emergency"
    assert [h["hazard"] for h in await store.history("T3") if h["event"] == "hazard_refiled"] == ["gas"]
    assert await redis.xlen(streams.REROUTED) == 2

    await run(redis, dispatch.worker, streams.DISPATCH, streams.REROUTED)
    moved = [d for d in await dispatch.dispatched() if d.ticket_id == "T3" and d.attempt == 2]
    assert [(d.department, d.urgency) for d in moved] == [("gasco", "emergency")]
    again = [d for d in await dispatch.dispatched() if d.ticket_id == "T1" and d.attempt == 2]
    assert len(again) == 1
    assert again[0].urgency == "emergency" and again[0].department == "rescue"
    assert again[0].dispatch_due_at == events[0].received_at + timedelta(hours=1)
    fire = await store.get("T1")
    assert fire is not None and fire.dispatch_due_at == events[0].received_at + timedelta(hours=1)  # type: ignore[attr-defined]
    assert (
        'hotline_urgency_review_tickets_total{outcome="raised"} 1.0'
        in generate_latest(reviewer.registry).decode()
    )
    assert (
        'hotline_urgency_review_tickets_total{outcome="refiled"} 1.0'
        in generate_latest(reviewer.registry).decode()
    )


async def test_an_emergency_the_text_itself_doubts_is_marked_for_an_operator_and_stays_one(
    redis: Redis, reviewer: Worker
) -> None:
    doubtful = "the wire hanging off the pole is a phone cable not a power line, can someone tidy it up"
    plain = "GAS LEAK AT 45 PINE AVE PLEASE HURRY"
    events = [
        await received(redis, 3, doubtful, "emergency", "combo:wire+hanging"),
        await received(redis, 4, plain, "emergency", "combo:gas+leak"),
    ]
    for e in events:  # as the classifier leaves them: the urgency in the store, the event on the stream
        write = StoreWrite(e.ticket_id, e.event_id, fields={"urgency": e.urgency})
        await TicketStore(redis).apply(write, scope=streams.CLASSIFIER)
        await redis.xadd(streams.CLASSIFIED, {DATA_FIELD: pack(e)})
    await run(redis, reviewer, streams.URGENCY_REVIEW, streams.CLASSIFIED)
    store = TicketStore(redis)
    marked, kept = await store.get("T3"), await store.get("T4")
    assert marked is not None and kept is not None
    assert marked.urgency == "emergency" and str(marked.urgency_doubt).startswith("e5:0.0")  # type: ignore[attr-defined]
    assert "not" in str(marked.urgency_doubt)  # type: ignore[attr-defined]
    assert kept.urgency == "emergency" and getattr(kept, "urgency_doubt", None) is None
    assert [h["event"] for h in await store.history("T3")][-1] == "urgency_doubted"
    assert [as_str(t) for t in await redis.zrange(keys.review, 0, -1)] == ["T3"]  # on the review queue
    # Routed again only to be filed under a category that acts on the hazard (both were filed under
    # environment); never lowered: the deadline stays an hour.
    refiled = [t for t in ("T3", "T4") if "hazard_refiled" in [h["event"] for h in await store.history(t)]]
    assert "T4" in refiled and kept.category == "utilities"
    assert await redis.xlen(streams.REROUTED) == len(refiled)
    metrics = generate_latest(reviewer.registry).decode()
    assert 'hotline_urgency_review_doubts_total{outcome="doubted"} 1.0' in metrics
    assert 'hotline_urgency_review_doubts_total{outcome="no_doubt_word"} 1.0' in metrics
