"""Wiring of the classifier: settings, model, the consumer of tickets.received."""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream
from pydantic import Field

from services.classifier.handlers import Model, classify_batch
from services.classifier.keywords import KeywordClassifier
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects
from shared.events import TicketReceived
from shared.settings import CommonSettings
from shared.taxonomy import load_taxonomy
from shared.worker import Consumer, Worker


class ClassifierSettings(CommonSettings):
    port: int = 8081
    review_below: float = Field(
        default=0.5, ge=0, le=1, description="Confidence under which operators review"
    )
    model_dir: Path | None = None


def load_model(settings: ClassifierSettings) -> Model:
    return KeywordClassifier(load_taxonomy(settings.taxonomy_path))


def build(
    settings: ClassifierSettings | None = None, model: Model | None = None
) -> tuple[Worker, AsgiFastStream]:
    settings = settings or ClassifierSettings()
    chosen = model or load_model(settings)

    async def handle(events: list[TicketReceived]) -> list[Effects]:
        return classify_batch(events, model=chosen, review_below=settings.review_below)

    worker = Worker(
        service="classifier",
        settings=settings,
        redis=redis_client(settings.redis_url),
        consumers=[Consumer(streams.RECEIVED, streams.CLASSIFIER, TicketReceived, handle)],
    )
    return worker, worker.asgi(make_broker(settings))
