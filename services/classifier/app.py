"""Wiring of the classifier: settings, model, gazetteer, duplicate index, the consumer of tickets.received."""

from __future__ import annotations

import logging
from pathlib import Path

from faststream.asgi import AsgiFastStream
from pydantic import Field, model_validator

from services.classifier import duplicates
from services.classifier.duplicates import DuplicateIndex
from services.classifier.handlers import Model, analyse, decide, wanted_buckets
from services.classifier.model import ModelLoadError, TextClassifier
from services.classifier.place import Gazetteer
from services.classifier.starter import default_model_dir, ensure_default_model
from services.classifier.urgency import detector
from services.classifier.urgency_model import DEFAULT_MODEL as DEFAULT_URGENCY_MODEL
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects
from shared.events import TicketReceived
from shared.settings import CommonSettings
from shared.taxonomy import load_taxonomy
from shared.worker import Consumer, Worker

log = logging.getLogger("hotline.classifier")


class ClassifierSettings(CommonSettings):
    port: int = 8081
    review_below: float = Field(
        default=0.5, ge=0, le=1, description="Confidence under which operators review"
    )
    override_citizen_category_confidence: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="The model's confidence from which its category replaces the one the citizen chose "
        "(Open311 service_code); never below review_below",
    )
    model_dir: Path | None = Field(
        default=None,
        description="A directory written by `hotline model train` (HOTLINE_MODEL_DIR); unset: the default "
        "model, trained from the starter set into a cache directory on first start",
    )
    urgency_model: Path = Field(
        default=DEFAULT_URGENCY_MODEL,
        description="The urgency model file written by `hotline model train-urgency` (HOTLINE_URGENCY_MODEL);"
        " default: the one trained on the team's examples, shipped in services/classifier/data",
    )
    duplicate_window_hours: float = Field(
        default=72, gt=0, description="How far back an open ticket can be repeated"
    )
    duplicate_threshold: float = Field(
        default=0.5, gt=0, le=1, description="Text similarity (Jaccard of character bigrams) of a repeat"
    )
    duplicate_candidates: int = Field(
        default=500, ge=1, description="Most recent tickets per district and category compared with"
    )

    @model_validator(mode="after")
    def _override_only_when_sure(self) -> ClassifierSettings:
        if self.override_citizen_category_confidence < self.review_below:
            raise ValueError(
                "override_citizen_category_confidence must be at least review_below: a model unsure "
                "enough to ask for review never overrides the citizen's category"
            )
        return self

    def duplicate_policy(self) -> duplicates.Policy:
        return duplicates.Policy(
            window_seconds=self.duplicate_window_hours * 3600,
            threshold=self.duplicate_threshold,
            max_candidates=self.duplicate_candidates,
        )


def load_model(settings: ClassifierSettings) -> TextClassifier:
    """The configured model, else the default one (trained on first use); refused if not on the taxonomy."""
    directory = settings.model_dir or ensure_default_model(
        default_model_dir(settings.taxonomy_path), settings.taxonomy_path
    )
    model = TextClassifier.load(directory)
    unknown = sorted(set(model.labels) - set(load_taxonomy(settings.taxonomy_path).codes()))
    if unknown:
        raise ModelLoadError(
            f"{directory}: categories not in the taxonomy {settings.taxonomy_path}: {', '.join(unknown)}"
        )
    model.predict(["预热 warm-up"])  # loads the word dictionary now, not on the first ticket
    log.info("classifier model %s from %s", model.version, directory)
    return model


def build(
    settings: ClassifierSettings | None = None, model: Model | None = None
) -> tuple[Worker, AsgiFastStream]:
    settings = settings or ClassifierSettings()
    chosen = model or load_model(settings)
    gazetteer = Gazetteer.from_yaml(settings.gazetteer_path)
    urgency = detector(settings.urgency_model)
    policy = settings.duplicate_policy()
    redis = redis_client(settings.redis_url)
    index = DuplicateIndex(redis, policy)

    async def handle(events: list[TicketReceived]) -> list[Effects]:
        analyses = analyse(
            events,
            model=chosen,
            gazetteer=gazetteer,
            overrule_citizen_at=settings.override_citizen_category_confidence,
            urgency=urgency,
        )
        found = await index.candidates(wanted_buckets(analyses, policy))
        return decide(
            analyses,
            candidates=found,
            policy=policy,
            review_below=settings.review_below,
            version=chosen.version,
        )

    worker = Worker(
        service="classifier",
        settings=settings,
        redis=redis,
        consumers=[Consumer(streams.RECEIVED, streams.CLASSIFIER, TicketReceived, handle)],
    )
    return worker, worker.asgi(make_broker(settings))
