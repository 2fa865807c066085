"""Wiring of dispatch: the routing table (reloaded on change), three consumers, two background loops.

- tickets.classified -> assign a department (handlers.on_classified)
- tickets.updated    -> accept / reject (re-dispatch) / resolve / note (handlers.on_updated)
- tickets.reopened   -> back to a department (handlers.on_reopened)
- the escalation scanner (deadlines) and the outbound webhook loop run beside them.
Each batch reads what the handlers need (tickets, queue depths, acceptance counts) in a few round trips,
then calls the handlers one event at a time, carrying each ticket's new fields to the next event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from faststream.asgi import AsgiFastStream
from pydantic import Field
from redis.asyncio import Redis

from services.dispatch import handlers
from services.dispatch.assign import Demand
from services.dispatch.escalation import Scanner
from services.dispatch.handlers import Assigned
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.outbound import Outbound, OutboundSettings
from services.dispatch.routing import RoutingSource
from services.dispatch.state import read_snapshot
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects
from shared.events import (
    Event,
    TicketClassified,
    TicketDispatched,
    TicketReopened,
    TicketRerouted,
    TicketUpdated,
    utcnow,
)
from shared.settings import CommonSettings
from shared.status import Status
from shared.store import Ticket, TicketStore
from shared.worker import Consumer, Worker

E = TypeVar("E", bound=Event)


class DispatchSettings(CommonSettings):
    port: int = 8082
    escalation_interval: float = Field(default=5.0, gt=0, description="Seconds between deadline scans")
    outbound_timeout: float = Field(default=5.0, gt=0)
    outbound_max_attempts: int = Field(default=6, ge=1)
    outbound_backoff_base: float = Field(default=2.0, gt=0)
    outbound_backoff_cap: float = Field(default=600.0, gt=0)
    outbound_concurrency: int = Field(default=32, ge=1)


class Dispatcher:
    """The batch handlers with the reads they need; one per process."""

    def __init__(self, redis: Redis, routing: RoutingSource, metrics: DispatchMetrics) -> None:
        self.redis = redis
        self.store = TicketStore(redis)
        self.routing = routing
        self.metrics = metrics

    async def classified(self, events: list[TicketClassified]) -> list[Effects]:
        table, now = self.routing.refresh(), utcnow()
        tickets = await self.store.get_many(
            [e.ticket_id for e in events], fields=("department", "media_url", "urgency")
        )
        supply = await read_snapshot(
            self.redis, table, [handlers.classified_demand(e) for e in events if not e.duplicate_of]
        )
        out = []
        for event, ticket in zip(events, tickets, strict=True):
            previous, media = (ticket.department, ticket.media_url) if ticket is not None else (None, None)
            out.append(
                handlers.on_classified(
                    event,
                    table=table,
                    supply=supply,
                    now=now,
                    previous=previous,
                    media_url=media,
                    urgency=ticket.urgency if ticket is not None else None,
                )
            )
        return self._counted(out)

    async def updated(self, events: list[TicketUpdated]) -> list[Effects]:
        return await self._on_tickets(events, handlers.on_updated, _current_demand)

    async def reopened(self, events: list[TicketReopened]) -> list[Effects]:
        return await self._on_tickets(events, handlers.on_reopened, handlers.reopened_demand)

    async def rerouted(self, events: list[TicketRerouted]) -> list[Effects]:
        # A corrected category is published before intake writes it: route by the event's.
        corrected = {e.ticket_id: e.category for e in events if e.category}
        return await self._on_tickets(events, handlers.on_rerouted, _current_demand, corrected)

    async def _on_tickets(
        self,
        events: list[E],
        handle: Callable[..., Effects],
        demand_of: Callable[[Assigned, datetime], Demand | None],
        categories: dict[str, str] | None = None,
    ) -> list[Effects]:
        """Events about dispatched tickets: read the tickets (with `categories` as their category) and
        the supply their demands need; handle."""
        table, now = self.routing.refresh(), utcnow()
        batch = await _Tickets.read(self.store, events)
        for ticket_id, category in (categories or {}).items():
            if ticket_id in batch.rows:
                batch.rows[ticket_id]["category"] = category
        demands = [d for t in batch.all() if t is not None and (d := demand_of(t, now)) is not None]
        supply = await read_snapshot(self.redis, table, demands)
        return self._counted(
            batch.each(events, lambda e, t: handle(e, ticket=t, table=table, supply=supply, now=now))
        )

    def _counted(self, results: list[Effects]) -> list[Effects]:
        # Counted before the commit: a batch that fails to commit is counted again when retried.
        for effects in results:
            for p in effects.publish:
                if isinstance(p.event, TicketDispatched):
                    status = effects.writes[0].fields.get("status") if effects.writes else None
                    how = (
                        "coordinator"
                        if status == Status.COORDINATOR
                        else "first"
                        if p.event.attempt == 1
                        else "again"
                    )
                    self.metrics.assignments.labels(how).inc()
        return results


class _Tickets:
    """The batch's tickets, updated by each event's writes so the next event of the same ticket sees them."""

    def __init__(self, rows: dict[str, dict[str, object]]) -> None:
        self.rows = rows

    @classmethod
    async def read(cls, store: TicketStore, events: Iterable[Event]) -> _Tickets:
        ids = list(dict.fromkeys(e.ticket_id for e in events))
        found = await store.get_many(ids)
        return cls({t.ticket_id: t.model_dump() for t in found if t is not None})

    def get(self, ticket_id: str) -> Assigned | None:
        row = self.rows.get(ticket_id)
        return None if row is None else Assigned.of(Ticket.model_validate(row))

    def all(self) -> list[Assigned | None]:
        return [self.get(i) for i in self.rows]

    def each(self, events: list[E], handle: Callable[[E, Assigned | None], Effects]) -> list[Effects]:
        out = []
        for event in events:
            effects = handle(event, self.get(event.ticket_id))
            for write in effects.writes:
                row = self.rows.get(write.ticket_id)
                if row is not None:
                    for k, v in write.fields.items():
                        if v is None:
                            row.pop(k, None)
                        else:
                            row[k] = v
            out.append(effects)
        return out


def build(settings: DispatchSettings | None = None) -> tuple[Worker, AsgiFastStream]:
    settings = settings or DispatchSettings()
    redis = redis_client(settings.redis_url)
    worker = Worker(service="dispatch", settings=settings, redis=redis, consumers=[])
    metrics = DispatchMetrics(worker.registry)
    routing = RoutingSource(
        settings.routing_path, on_reload=lambda o: metrics.routing_reloads.labels(o).inc()
    )
    dispatcher = Dispatcher(redis, routing, metrics)
    scanner = Scanner(redis, metrics, maxlen=settings.stream_maxlen, interval=settings.escalation_interval)
    outbound = Outbound(
        redis,
        routing,
        metrics,
        OutboundSettings(
            timeout=settings.outbound_timeout,
            max_attempts=settings.outbound_max_attempts,
            backoff_base=settings.outbound_backoff_base,
            backoff_cap=settings.outbound_backoff_cap,
            concurrency=settings.outbound_concurrency,
        ),
        maxlen=settings.stream_maxlen,
    )
    worker.consumers.extend(
        [
            Consumer(streams.CLASSIFIED, streams.DISPATCH, TicketClassified, dispatcher.classified),
            Consumer(streams.UPDATED, streams.DISPATCH, TicketUpdated, dispatcher.updated),
            Consumer(streams.REOPENED, streams.DISPATCH, TicketReopened, dispatcher.reopened),
            Consumer(streams.REROUTED, streams.DISPATCH, TicketRerouted, dispatcher.rerouted),
        ]
    )
    worker.background.extend([scanner.run, outbound.run])
    return worker, worker.asgi(make_broker(settings))


def _current_demand(ticket: Assigned, now: datetime) -> Demand | None:
    return ticket.demand()
