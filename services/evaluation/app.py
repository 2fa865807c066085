"""Wiring of evaluation: the consumer of tickets.dispatched."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.evaluation.handlers import on_dispatched
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects, each
from shared.events import TicketDispatched
from shared.settings import CommonSettings
from shared.worker import Consumer, Worker


class EvaluationSettings(CommonSettings):
    port: int = 8083


def build(settings: EvaluationSettings | None = None) -> tuple[Worker, AsgiFastStream]:
    settings = settings or EvaluationSettings()

    async def handle(event: TicketDispatched) -> Effects:
        return on_dispatched(event)

    worker = Worker(
        service="evaluation",
        settings=settings,
        redis=redis_client(settings.redis_url),
        consumers=[Consumer(streams.DISPATCHED, streams.EVALUATION, TicketDispatched, each(handle))],
    )
    return worker, worker.asgi(make_broker(settings))
