"""The classifier worker against a real Redis: model version, urgency and place on the ticket, duplicates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.classifier.app import ClassifierSettings, build
from services.classifier.model import TextClassifier
from services.classifier.starter import ensure_default_model
from shared import streams
from shared.codec import DATA_FIELD, decode, pack
from shared.events import Location, TicketClassified, TicketReceived
from shared.store import TicketStore
from shared.worker import Consumer, Worker

pytestmark = pytest.mark.redis
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
LEAK = "湖滨路18号楼下的自来水管爆了，水一直往外冒，整个小区停水"
LEAK_AGAIN = "湖滨路18号楼下自来水管爆了，水一直在往外冒，小区停水了"
Entry = tuple[bytes, dict[bytes, bytes]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_default_model(tmp_path_factory.mktemp("models") / "default")


@pytest.fixture
async def classifier(redis: Redis, redis_url: str, model_dir: Path) -> AsyncIterator[Worker]:
    worker, _ = build(ClassifierSettings(redis_url=redis_url, model_dir=model_dir))
    yield worker
    await worker.redis.aclose()


def received(n: int, text: str, minutes: int = 0, location: Location | None = None) -> TicketReceived:
    at = T0 + timedelta(minutes=minutes)
    return TicketReceived(
        event_id=f"e{n}",
        ticket_id=f"T{n}",
        occurred_at=at,
        channel="telephony",
        source_id=f"c{n}",
        text=text,
        received_at=at,
        location=location,
    )


async def run(redis: Redis, worker: Worker, *events: TicketReceived) -> list[Entry]:
    """Publish the events and process them as one batch, as the worker's subscriber would."""
    consumer: Consumer[TicketReceived] = worker.consumers[0]
    for e in events:
        await redis.xadd(streams.RECEIVED, {DATA_FIELD: pack(e)})
    reply = await redis.xreadgroup(streams.CLASSIFIER, "w1", {streams.RECEIVED: ">"}, count=100)
    batch: list[Entry] = list(reply[0][1])
    result = await worker.process(consumer, batch)
    assert len(result.done) == len(batch), result
    return batch


async def classified(redis: Redis) -> dict[str, TicketClassified]:
    events = [decode(f, TicketClassified) for _, f in await redis.xrange(streams.CLASSIFIED)]
    return {e.ticket_id: e for e in events}


async def test_the_ticket_gets_model_version_urgency_and_place(
    redis: Redis, classifier: Worker, model_dir: Path
) -> None:
    await run(
        redis,
        classifier,
        received(1, "楼道里闻到煤气味，燃气泄漏了", location=Location(lat=30.25, lon=120.05)),
        received(2, "The street light on Main Street has been out for a week"),
    )
    out = await classified(redis)
    version = TextClassifier.load(model_dir).version
    assert {e.model_version for e in out.values()} == {version}
    assert (out["T1"].urgency, out["T1"].place.district, out["T1"].place.source) == (
        "emergency",
        "beiyuan",
        "coordinates",
    )
    assert out["T2"].place.source == "unknown" and out["T2"].urgency == "general"
    ticket = await TicketStore(redis).get_or_raise("T1")
    assert (ticket.urgency, ticket.district, ticket.category) == ("emergency", "beiyuan", "utilities")
    assert (ticket.model_extra or {})["urgency_cue"].startswith("combo:")
    assert (ticket.model_extra or {})["model_version"] == version


async def test_repeats_of_open_tickets_are_linked_across_batches_and_within_one(
    redis: Redis, classifier: Worker
) -> None:
    first = await run(redis, classifier, received(1, LEAK))
    await run(redis, classifier, received(2, LEAK_AGAIN, minutes=30))
    out = await classified(redis)
    assert (out["T1"].place.district, out["T1"].place.street) == ("donghu", "donghu_hubin")
    assert out["T1"].duplicate_of is None and out["T2"].duplicate_of == "T1"

    # Redelivered, the first ticket stays an original: it never repeats itself or a later ticket.
    await classifier.process(classifier.consumers[0], first)
    assert (await classified(redis))["T1"].duplicate_of is None

    # Once the first ticket is resolved, a new report is a ticket of its own; within one batch the later
    # of two similar reports links to the earlier.
    await redis.hset("hotline:ticket:T1", "status", "resolved")
    await run(redis, classifier, received(4, LEAK_AGAIN, minutes=62), received(3, LEAK, minutes=60))
    out = await classified(redis)
    assert (out["T3"].duplicate_of, out["T4"].duplicate_of) == (None, "T3")


async def test_unknown_place_is_never_a_duplicate(redis: Redis, classifier: Worker) -> None:
    text = "人民路18号楼下的自来水管爆了，水一直往外冒，整个小区停水"
    await run(redis, classifier, received(1, text), received(2, text, minutes=1))
    out = await classified(redis)
    assert [out[t].duplicate_of for t in ("T1", "T2")] == [None, None]
    assert not await redis.keys("hotline:dupes:*")
