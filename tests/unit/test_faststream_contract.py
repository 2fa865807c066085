"""The event models work as faststream message bodies, checked in memory with TestRedisBroker.

TestRedisBroker gives batch stream messages no entry ids, so the batch wiring (and that faststream reads
what `shared.codec` writes) is tested against a real Redis in tests/integration and tests/e2e instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.redis import RedisBroker, StreamSub, TestRedisBroker

from shared import streams
from shared.codec import DATA_FIELD, decode, pack
from shared.events import TicketReceived

EVENT = TicketReceived(
    event_id="e1",
    ticket_id="T1",
    occurred_at=datetime(2026, 11, 28, tzinfo=UTC),
    channel="telephony",
    source_id="c1",
    text="路灯不亮",
    received_at=datetime(2026, 11, 28, tzinfo=UTC),
)


async def test_a_faststream_subscriber_reads_the_events_we_encode() -> None:
    broker = RedisBroker()
    seen: list[TicketReceived] = []

    @broker.subscriber(stream=StreamSub(streams.RECEIVED, group="g", consumer="c"))
    async def handle(event: TicketReceived) -> None:
        seen.append(event)

    async with TestRedisBroker(broker) as br:
        await br.publish(EVENT, stream=streams.RECEIVED)
    assert seen == [EVENT]
    assert decode({DATA_FIELD: pack(EVENT)}, TicketReceived) == EVENT
