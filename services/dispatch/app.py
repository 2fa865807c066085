"""Wiring of dispatch: routing table, the consumer of tickets.classified."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.dispatch.handlers import dispatch
from services.dispatch.routing import load_routing
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects, each
from shared.events import TicketClassified
from shared.settings import CommonSettings
from shared.worker import Consumer, Worker


class DispatchSettings(CommonSettings):
    port: int = 8082


def build(settings: DispatchSettings | None = None) -> tuple[Worker, AsgiFastStream]:
    settings = settings or DispatchSettings()
    routing = load_routing(settings.routing_path)

    async def on_classified(event: TicketClassified) -> Effects:
        return dispatch(event, routing=routing)

    worker = Worker(
        service="dispatch",
        settings=settings,
        redis=redis_client(settings.redis_url),
        consumers=[Consumer(streams.CLASSIFIED, streams.DISPATCH, TicketClassified, each(on_classified))],
    )
    return worker, worker.asgi(make_broker(settings))
