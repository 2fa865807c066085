"""Dispatch's batch worker on the test Redis, fed events as its subscriber would be."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.dispatch.app import Dispatcher
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.routing import RoutingSource
from shared import streams
from shared.codec import DATA_FIELD, decode, pack
from shared.effects import StoreWrite
from shared.events import (
    Event,
    TicketClassified,
    TicketDispatched,
    TicketReopened,
    TicketRerouted,
    TicketUpdated,
)
from shared.settings import CommonSettings
from shared.store import TicketStore
from shared.worker import Consumer, Worker


class Harness:
    def __init__(self, redis: Redis, path: Path) -> None:
        self.redis = redis
        self.metrics = DispatchMetrics(CollectorRegistry())
        self.routing = RoutingSource(path)
        self.dispatcher = Dispatcher(redis, self.routing, self.metrics)
        self.consumers = {
            streams.CLASSIFIED: Consumer(
                streams.CLASSIFIED, streams.DISPATCH, TicketClassified, self.dispatcher.classified
            ),
            streams.UPDATED: Consumer(
                streams.UPDATED, streams.DISPATCH, TicketUpdated, self.dispatcher.updated
            ),
            streams.REOPENED: Consumer(
                streams.REOPENED, streams.DISPATCH, TicketReopened, self.dispatcher.reopened
            ),
            streams.REROUTED: Consumer(
                streams.REROUTED, streams.DISPATCH, TicketRerouted, self.dispatcher.rerouted
            ),
        }
        self.worker = Worker(
            service="dispatch",
            settings=CommonSettings(),
            redis=redis,
            consumers=list(self.consumers.values()),
        )
        self.store = TicketStore(redis)

    async def feed(self, stream: str, *events: Event) -> None:
        """Append events and run the dispatch group's batch over them, as the subscriber would; a
        classification's urgency is in the store first, as the classifier writes it with the event."""
        for e in events:
            if isinstance(e, TicketClassified):
                urgency = StoreWrite(e.ticket_id, e.event_id, fields={"urgency": e.urgency})
                await self.store.apply(urgency, scope=streams.CLASSIFIER)
            await self.redis.xadd(stream, {DATA_FIELD: pack(e)})
        reply = await self.redis.xreadgroup(streams.DISPATCH, "w1", {stream: ">"}, count=1000)
        result = await self.worker.process(self.consumers[stream], list(reply[0][1]))
        assert not result.dead and not result.retry

    async def dispatched(self) -> list[TicketDispatched]:
        return [decode(f, TicketDispatched) for _, f in await self.redis.xrange(streams.DISPATCHED)]
