"""Insight through the real worker and a real Redis: counts, one alert per surge episode, refresh."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.insight import state
from services.insight.app import Insight, InsightSettings
from services.insight.handlers import episode_id
from services.insight.lease import Lease
from shared import contract, streams
from shared.codec import DATA_FIELD, decode, pack
from shared.effects import StoreWrite
from shared.events import HotspotAlert, Place, TicketClassified
from shared.store import Ticket, TicketStore, iso, keys
from shared.worker import Consumer, Worker

pytestmark = pytest.mark.redis
T = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday


def classified(
    n: int, at: datetime, category: str = "environment", district: str = "A2区"
) -> TicketClassified:
    return TicketClassified(
        event_id=f"c{n}",
        ticket_id=f"T{n}",
        occurred_at=at,
        category=category,
        confidence=0.9,
        place=Place(district=district),
        model_version="t",
        received_at=at,
    )


def make(redis: Redis, redis_url: str) -> tuple[Insight, Worker, Consumer[TicketClassified]]:
    registry = CollectorRegistry()
    insight = Insight(InsightSettings(redis_url=redis_url), redis, registry)
    consumer = Consumer(streams.CLASSIFIED, streams.INSIGHT, TicketClassified, insight.handle)
    worker = Worker(
        service="insight", settings=InsightSettings(), redis=redis, consumers=[consumer], registry=registry
    )
    return insight, worker, consumer


async def publish_and_process(
    redis: Redis, worker: Worker, consumer: Consumer[TicketClassified], events: list[TicketClassified]
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    for e in events:
        await redis.xadd(streams.CLASSIFIED, {DATA_FIELD: pack(e)})
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    while reply := await redis.xreadgroup(streams.INSIGHT, "w1", {streams.CLASSIFIED: ">"}, count=50):
        batch = list(reply[0][1])
        result = await worker.process(consumer, batch)
        assert len(result.done) == len(batch), result
        entries += batch
    return entries


async def alerts(redis: Redis) -> list[HotspotAlert]:
    return [decode(f, HotspotAlert) for _, f in await redis.xrange(streams.HOTSPOTS)]


async def test_a_burst_raises_exactly_one_alert_per_episode(redis: Redis, redis_url: str) -> None:
    insight, worker, consumer = make(redis, redis_url)
    history, n = [], 0
    for day in range(14, 0, -1):  # two weeks of ordinary traffic on two series
        for hour in (9, 14, 16):
            n += 1
            history.append(classified(n, T - timedelta(days=day) + timedelta(hours=hour - 10)))
        n += 1
        history.append(classified(n, T - timedelta(days=day), category="transport", district="A1区"))
    await publish_and_process(redis, worker, consumer, history)
    assert await alerts(redis) == [], "ordinary traffic raises nothing"

    burst = [classified(1000 + i, T + timedelta(minutes=4 * i)) for i in range(12)]
    entries = await publish_and_process(redis, worker, consumer, burst)
    [alert] = await alerts(redis)
    assert (alert.category, alert.district) == ("environment", "A2区")
    assert alert.count >= 4 and alert.expected < 1 and alert.probability < 1e-4
    assert alert.event_id == episode_id("environment|A2区", state.hour_index(T))
    assert alert.example_tickets and set(alert.example_tickets) <= {e.ticket_id for e in history + burst}

    await worker.process(consumer, entries)  # the same entries delivered again (a lost ack)
    later = [classified(2000 + i, T + timedelta(hours=2, minutes=i)) for i in range(8)]
    await publish_and_process(redis, worker, consumer, later)  # the surge goes on: same episode
    assert len(await alerts(redis)) == 1
    hourly = await redis.hget(state.hourly_key(T.date()), "environment|A2区|10")
    assert hourly == b"12", "each ticket counted once despite the redelivery"

    other = [
        classified(3000 + i, T + timedelta(minutes=i), category="transport", district="A1区")
        for i in range(9)
    ]
    await publish_and_process(redis, worker, consumer, other)
    assert [a.category for a in await alerts(redis)] == ["environment", "transport"]

    await insight.refresh(now=T + timedelta(hours=3))
    assert insight.metrics.open._value.get() == 2
    assert insight.metrics.alerts.labels("environment")._value.get() == 1
    after_cooldown = T + timedelta(hours=2 + insight.config.cooldown_hours + 1)
    await insight.refresh(now=after_cooldown)
    assert insight.metrics.open._value.get() == 0
    forecast = json.loads(await redis.get(state.FORECAST) or "{}")
    assert set(forecast) >= {"all", "environment", "transport"}
    assert len(forecast["all"]["point"]) == 7


async def test_no_alert_before_enough_history(redis: Redis, redis_url: str) -> None:
    _, worker, consumer = make(redis, redis_url)
    await publish_and_process(
        redis, worker, consumer, [classified(i, T + timedelta(minutes=i)) for i in range(20)]
    )
    assert await alerts(redis) == []
    assert await redis.hget(state.daily_key(T.year, T.month), "environment|A2区|20") == b"20"


async def test_one_replica_at_a_time_runs_the_background_pass_and_another_takes_over(
    redis: Redis, redis_url: str
) -> None:
    def replica(name: str) -> Insight:
        settings = InsightSettings(HOTLINE_CONSUMER_NAME=name, redis_url=redis_url, refresh_seconds=0.05)
        return Insight(settings, redis, CollectorRegistry())

    first, second = replica("insight-a"), replica("insight-b")

    await first.refresh(now=T)
    await redis.delete(state.FORECAST)
    await second.refresh(now=T)
    assert await redis.get(state.FORECAST) is None, "the second replica left the pass to the holder"
    assert (first.metrics.leader._value.get(), second.metrics.leader._value.get()) == (1, 0)

    stop = asyncio.Event()
    running = asyncio.create_task(first.loop(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await running  # stopping gives the lease up at once, without waiting for it to expire
    await second.refresh(now=T)
    assert second.metrics.leader._value.get() == 1 and await redis.get(state.FORECAST) is not None


async def test_a_holder_that_stops_renewing_loses_the_lease_when_it_expires(redis: Redis) -> None:
    dead = Lease(redis, "lease", "a", ttl_seconds=0.2)
    alive = Lease(redis, "lease", "b", ttl_seconds=0.2)
    assert await dead.hold() and not await alive.hold()
    assert await dead.hold(), "the holder renews"
    await asyncio.sleep(0.3)
    assert await alive.hold() and not await dead.hold()
    await dead.release()  # not its lease any more: nothing happens
    assert await redis.get("lease") == b"b"


async def test_counts_are_read_back_for_every_hour_of_the_windows_across_midnight(redis: Redis) -> None:
    midnight = datetime(2026, 11, 21, tzinfo=UTC)
    counted = {
        ("environment|A2区", midnight - timedelta(hours=2)): 3,
        ("environment|A2区", midnight + timedelta(hours=1)): 1,
        ("transport|A1区", midnight - timedelta(hours=1)): 2,
        ("transport|A1区", midnight - timedelta(hours=5)): 7,  # outside the windows asked for
    }
    for (series, at), n in counted.items():
        for i in range(n):
            for op in state.count_ops(series, at, f"T{i}"):
                for command in op.commands():
                    await redis.execute_command(*command)
    hour = state.hour_index(midnight + timedelta(hours=1))
    counts = await state.load_counts(redis, {"environment|A2区", "transport|A1区", "water|-"}, {hour}, 4)
    assert counts == {
        "environment|A2区": {hour - 3: 3, hour: 1},
        "transport|A1区": {hour - 2: 2},
        "water|-": {},
    }


async def test_emerging_issues_grow_and_each_ticket_is_read_back_once(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    insight, _, _ = make(redis, redis_url)
    store = TicketStore(redis)

    async def received(n: int, at: datetime) -> None:
        fields = {
            "text": "丽发新城小区附近搅拌站噪音扰民，请尽快处理",
            "received_at": iso(at),
        }
        place = {"district": "A2区"}
        await store.apply(StoreWrite(f"T{n}", f"r{n}", fields=fields), scope=contract.INTAKE)
        await store.apply(StoreWrite(f"T{n}", f"c{n}", fields=place), scope=contract.CLASSIFIER)
        await redis.zadd(keys.by_created, {f"T{n}": at.timestamp()})

    read: list[str] = []
    get_many = store.get_many

    async def recording(ids: list[str], fields: tuple[str, ...] | None = None) -> list[Ticket | None]:
        read.extend(ids)
        return await get_many(ids, fields)

    monkeypatch.setattr(insight.store, "get_many", recording)
    for n, minute in enumerate((0, 1, 4.5)):  # the last one within the minute the next pass reads again
        await received(n, T + timedelta(minutes=minute))
    await insight.update_emerging(T + timedelta(minutes=5))
    await received(3, T + timedelta(minutes=6))
    await insight.update_emerging(T + timedelta(minutes=7))
    [issue] = json.loads(await redis.get(state.EMERGING) or "[]")
    assert sorted(issue["message_ids"]) == ["T0", "T1", "T2", "T3"] and issue["district"] == "A2区"
    assert sorted(read) == ["T0", "T1", "T2", "T3"], "a ticket already clustered is not read again"
