"""The store's index of status changes: hour sets written with each change, read by time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from shared import contract
from shared.effects import StoreWrite
from shared.store import UPDATES_RETENTION, TicketStore, Update, iso, keys

pytestmark = pytest.mark.redis
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


async def change(
    store: TicketStore, ticket_id: str, hours_ago: int, status: str | None = "dispatched"
) -> None:
    at = iso(NOW - timedelta(hours=hours_ago))
    await store.apply(
        StoreWrite(
            ticket_id=ticket_id,
            event_id=f"{ticket_id}-{hours_ago}",
            fields={"status": status, "updated_at": at} if status else {"updated_at": at},
            history={"at": at, "event": "test"},
        ),
        scope=contract.DISPATCH,
    )


async def test_the_oldest_changes_of_a_window_come_first_and_the_limit_keeps_the_oldest(redis: Redis) -> None:
    store = TicketStore(redis)
    for ticket_id, hours_ago in (("A", 5), ("A", 1), ("B", 3), ("C", 4), ("C", 4)):  # C's twice: a redelivery
        await change(store, ticket_id, hours_ago)
    await change(store, "B", 2, status=None)  # a history entry that changes no status is no update

    def seen(updates: list[Update]) -> list[tuple[str, int]]:
        return [(u.ticket_id, u.index) for u in updates]

    since, until = NOW - timedelta(hours=6), NOW
    assert seen(await store.updates(since, until, 10)) == [("A", 0), ("C", 0), ("B", 0), ("A", 1)]
    assert seen(await store.updates(since, until, 2)) == [("A", 0), ("C", 0)]
    assert seen(await store.updates(NOW - timedelta(hours=4), NOW - timedelta(hours=2), 10)) == [
        ("C", 0),
        ("B", 0),
    ]
    assert seen(await store.updates(since, until, 10, ticket_ids=["A", "Z"])) == [("A", 0), ("A", 1)]
    [update] = await store.updates(NOW - timedelta(hours=1), NOW, 10)
    assert update.at == NOW - timedelta(hours=1) and update.entry["status"] == "dispatched"


async def test_hour_sets_expire_after_the_retention(redis: Redis) -> None:
    await change(TicketStore(redis), "A", 0)
    hour = int(NOW.timestamp()) // 3600
    assert await redis.smembers(keys.updates(hour)) == {b"A"}
    expires = (hour + 1) * 3600 + UPDATES_RETENTION.total_seconds()
    assert abs(await redis.ttl(keys.updates(hour)) - (expires - datetime.now(UTC).timestamp())) < 5


async def test_a_write_sets_some_fields_and_deletes_those_given_as_none(redis: Redis) -> None:
    store = TicketStore(redis, record=None)
    first = {"category": "water", "district": "d1", "street": "s1", "urgency": "general"}
    await store.apply(StoreWrite("T-none", "e1", fields=first), scope=contract.CLASSIFIER)
    again = {"category": "roads", "district": None, "street": None, "urgency": "urgent"}
    await store.apply(StoreWrite("T-none", "e2", fields=again), scope=contract.CLASSIFIER)
    left = await redis.hgetall(keys.ticket("T-none"))
    assert left == {b"category": b"roads", b"urgency": b"urgent", b"rev": b"2"}
