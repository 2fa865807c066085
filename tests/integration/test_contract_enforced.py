"""The data contract on a real Redis: a write the writer's scope does not own changes nothing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from shared import contract, streams
from shared.codec import decode
from shared.contract import UndeclaredWriteError
from shared.effects import Effects, StoreWrite
from shared.events import TicketReceived
from shared.settings import CommonSettings
from shared.store import TicketStore, keys
from shared.worker import Consumer, Worker
from tests.integration.test_worker import GROUP, add, pending, read, received

pytestmark = pytest.mark.redis


async def test_the_store_refuses_a_field_the_writer_does_not_own_and_writes_nothing(redis: Redis) -> None:
    store = TicketStore(redis)
    write = StoreWrite("T1", "e1", fields={"department": "roads"}, history={"event": "sneaky"})
    with pytest.raises(UndeclaredWriteError, match="which dispatch owns"):
        await store.apply(write, scope=contract.CLASSIFIER)
    assert await redis.exists(keys.ticket("T1"), keys.history("T1"), keys.applied("T1")) == 0
    await store.apply(write, scope=contract.DISPATCH)
    assert (await store.get_or_raise("T1")).department == "roads"


async def test_a_handler_writing_another_services_field_is_dead_lettered_with_the_reason(
    redis: Redis,
) -> None:
    """Refused before the commit: the batch mates commit, the offender retries, then dead-letters."""

    async def overreaching(events: list[TicketReceived]) -> list[Effects]:
        field = lambda e: "department" if e.ticket_id == "T2" else "category"  # noqa: E731
        return [Effects(writes=[StoreWrite(e.ticket_id, e.event_id, fields={field(e): "x"})]) for e in events]

    consumer = Consumer(streams.RECEIVED, GROUP, TicketReceived, overreaching)
    worker = Worker(
        service="test", settings=CommonSettings(max_deliveries=1), redis=redis, consumers=[consumer]
    )
    await add(redis, received(1), received(2), received(3))
    result = await worker.process(consumer, await read(redis))
    assert len(result.done) == 2 and len(result.dead) == 1
    assert await pending(redis) == 0
    [(_, fields)] = await redis.xrange(streams.dlq(streams.RECEIVED))
    assert fields[b"reason"] == b"handler_error" and b"which dispatch owns" in fields[b"error"]
    assert decode(fields, TicketReceived).ticket_id == "T2"
    assert await redis.hget(keys.ticket("T2"), "department") is None
    assert await redis.hget(keys.ticket("T1"), "category") == b"x"
