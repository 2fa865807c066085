"""Wiring of insight: the consumer of tickets.classified."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.insight.handlers import count_classified
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects, each
from shared.events import TicketClassified
from shared.settings import CommonSettings
from shared.worker import Consumer, Worker


class InsightSettings(CommonSettings):
    port: int = 8084


def build(settings: InsightSettings | None = None) -> tuple[Worker, AsgiFastStream]:
    settings = settings or InsightSettings()

    async def handle(event: TicketClassified) -> Effects:
        return count_classified(event)

    worker = Worker(
        service="insight",
        settings=settings,
        redis=redis_client(settings.redis_url),
        consumers=[Consumer(streams.CLASSIFIED, streams.INSIGHT, TicketClassified, each(handle))],
    )
    return worker, worker.asgi(make_broker(settings))
