"""The urgency reviewer's process: the consumer group `urgency-review` on tickets.classified, raising to
`emergency` the tickets the e5 model recognises as emergencies and filing emergencies under the category
that acts on their hazard (services/classifier/urgency_review.py), and marking for an operator the emergencies
it doubts (services/classifier/urgency_doubt.py), never lowering one.

    python -m services.classifier.review        # `hotline up` and Kubernetes run it as `urgency-review`

It takes spare CPU only: the process runs under Linux's SCHED_IDLE (else at nice 10), e5 on one thread, in a
worker thread so the event loop keeps answering /livez and /metrics. Nothing waits for it: dispatch has routed
each ticket already, and a raise re-routes it with the emergency deadlines. Under a peak it lags (its own
group, its own lag alert); tickets older than an hour when it reaches them are counted and left as they are.
It never logs a ticket's text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt
from faststream.asgi import AsgiFastStream
from prometheus_client import Counter, Gauge
from pydantic import Field

from services.classifier import hazard_kind
from services.classifier.hazard_kind import HazardKind
from services.classifier.hazards import load as load_hazards
from services.classifier.text import report_text
from services.classifier.urgency import detector
from services.classifier.urgency_doubt import DOUBT_BELOW, Doubt, DoubtPolicy, doubt_batch
from services.classifier.urgency_e5 import DEFAULT_MODEL, DIM, E5ModelError, E5Urgency, embed
from services.classifier.urgency_review import OUTCOMES, Filed, Policy, Recogniser, Scorer, review_batch
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects
from shared.events import TicketClassified, utcnow
from shared.service import serve
from shared.settings import CommonSettings
from shared.store import TicketStore
from shared.worker import Consumer, Worker

log = logging.getLogger("hotline.urgency-review")

SERVICE = streams.URGENCY_REVIEW


class ReviewSettings(CommonSettings):
    port: int = 8088
    # Small batches: a batch of long letters costs 250 ms a text, and the claimer must not take over a
    # batch still being scored (claim_idle_ms well above batch_size x 250 ms).
    batch_size: int = Field(default=8, ge=1, le=1000)
    claim_idle_ms: int = Field(default=120_000, ge=100)
    e5_model: Path = Field(
        default=DEFAULT_MODEL,
        description="The file written by `hotline model train-urgency-e5` (HOTLINE_E5_MODEL); default: the "
        "one trained on the team's examples, shipped in services/classifier/data",
    )
    hazard_model: Path = Field(
        default=hazard_kind.DEFAULT_MODEL,
        description="The file written by `hotline model train-hazard-kind` (HOTLINE_HAZARD_MODEL); default: "
        "the one trained on the team's examples, shipped in services/classifier/data",
    )
    max_age_minutes: float = Field(
        default=60, gt=0, description="Tickets received longer ago than this are counted and not reviewed"
    )
    doubt_below: float = Field(
        default=DOUBT_BELOW,
        ge=0,
        le=1,
        description="An emergency whose text casts doubt on it and that e5 scores below this is marked a "
        "possible false alarm for an operator (0: never); its urgency stays",
    )
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much the process lowers its CPU priority where SCHED_IDLE is refused",
    )


class ReviewMetrics:
    def __init__(self, worker: Worker) -> None:
        registry = worker.registry
        self.tickets = Counter(
            "hotline_urgency_review_tickets",
            "Classified tickets the urgency reviewer saw, by outcome (raised, kept, or why it was skipped)",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.tickets.labels(outcome)
        self.doubts = Counter(
            "hotline_urgency_review_doubts",
            "Tickets the urgency reviewer looked at for a false alarm, by outcome (doubted: marked for "
            "an operator; not_doubted: e5 did not agree; no_doubt_word; not_asked: not an emergency...)",
            ["outcome"],
            registry=registry,
        )
        for doubt in get_args(Doubt):
            self.doubts.labels(doubt)
        self.lag = Gauge(
            "hotline_urgency_review_lag_seconds",
            "Age of the newest ticket of the last batch reviewed: how far behind the classifier it runs",
            registry=registry,
        )
        self.e5_seconds = Counter(
            "hotline_urgency_review_e5_seconds",
            "Time spent scoring texts with e5 (its rate is the CPU the reviewer takes)",
            registry=registry,
        )


class Embeddings:
    """e5's embeddings of the texts last asked about: the hazard kind model reads those of the tickets
    raised from the batch the urgency model scored, instead of embedding them again (11-250 ms a text)."""

    def __init__(self) -> None:
        self._last: dict[str, npt.NDArray[np.float32]] = {}

    def __call__(self, texts: list[str]) -> npt.NDArray[Any]:
        todo = [t for t in dict.fromkeys(texts) if t not in self._last]
        fresh = dict(zip(todo, embed(todo), strict=True)) if todo else {}
        known = {**self._last, **fresh}
        self._last = {t: known[t] for t in texts}
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, DIM), dtype=np.float32)


def e5_scorer(path: Path, embeddings: Embeddings | None = None) -> tuple[Scorer, float]:
    """The model of `path`, its engine loaded now (once per process) and warmed up; and its threshold."""
    model = E5Urgency.load(path)
    vectors = embeddings or Embeddings()

    def score(texts: list[str]) -> list[float]:
        return [float(p) for p in model.probability(vectors(texts))]

    score(["预热 warm-up"])
    return score, model.threshold


def hazard_recogniser(path: Path, embeddings: Embeddings | None = None) -> tuple[Recogniser, float]:
    """The hazard kind model of `path` over `embeddings` (those the urgency model's scorer keeps); and
    its threshold."""
    model = HazardKind.load(path)
    vectors = embeddings or Embeddings()
    return lambda texts: model.recognise(vectors(texts)), model.threshold


def build(
    settings: ReviewSettings | None = None,
    scorer: tuple[Scorer, float] | None = None,
    recogniser: tuple[Recogniser, float] | None = None,
) -> tuple[Worker, AsgiFastStream]:
    """`scorer`, `recogniser`: the scoring and recognising functions and their thresholds (default: the
    e5 models of the settings, over the same embeddings)."""
    settings = settings or ReviewSettings()
    embeddings = Embeddings()
    max_age = timedelta(minutes=settings.max_age_minutes)
    score, threshold = scorer or e5_scorer(settings.e5_model, embeddings)
    recognise, hazard_threshold = recogniser or hazard_recogniser(settings.hazard_model, embeddings)
    policy = Policy(
        threshold=threshold,
        hazard_threshold=hazard_threshold,
        hazards=load_hazards(),
        max_age=max_age,
    )
    doubt_policy = DoubtPolicy(below=settings.doubt_below, max_age=max_age)
    smell_only, doubts = detector().smell_only, detector().doubts
    redis = redis_client(settings.redis_url)
    store = TicketStore(redis)
    worker = Worker(service=SERVICE, settings=settings, redis=redis, consumers=[])
    metrics = ReviewMetrics(worker)

    def timed(texts: list[str]) -> list[float]:
        started = time.perf_counter()
        try:
            return list(score(texts))
        finally:
            metrics.e5_seconds.inc(time.perf_counter() - started)

    async def handle(events: list[TicketClassified]) -> list[Effects]:
        tickets = await store.get_many(
            [e.ticket_id for e in events],
            fields=("text", "title", "urgency", "category", "category_source"),
            rehydrate=False,
        )
        texts = [report_text(t.title, t.text) if t is not None and t.text else None for t in tickets]
        urgencies = [t.urgency if t is not None else None for t in tickets]
        filed = [
            Filed(t.category, (t.model_extra or {}).get("category_source"))
            if t is not None
            else Filed(None, None)
            for t in tickets
        ]
        now = utcnow()
        done = await asyncio.to_thread(
            review_batch,
            events,
            texts,
            urgencies,
            filed,
            score=timed,
            recognise=recognise,
            smell_only=smell_only,
            policy=policy,
            now=now,
        )
        # After the review: the doubt scores the classifier's emergencies, which the hazard kind model has
        # just read (`Embeddings` keeps the last call's vectors: embedded once).
        answered = [f.source == "operator" for f in filed]
        doubted = await asyncio.to_thread(
            doubt_batch, events, texts, answered, score=timed, doubts=doubts, policy=doubt_policy, now=now
        )
        for outcome in done.outcomes:
            metrics.tickets.labels(outcome).inc()
        for doubt in doubted.outcomes:
            metrics.doubts.labels(doubt).inc()
        metrics.lag.set(max(0.0, (now - max(e.received_at for e in events)).total_seconds()))
        for event, outcome, p in zip(events, done.outcomes, done.scores, strict=True):
            if outcome == "raised":
                log.info("%s raised to emergency (e5 %.2f)", event.ticket_id, p)
            elif outcome == "refiled":
                log.info("%s, an emergency, filed under the category of its hazard", event.ticket_id)
        for event, doubt, p in zip(events, doubted.outcomes, doubted.scores, strict=True):
            if doubt == "doubted":
                log.info("%s marked a possible false alarm (e5 %.2f)", event.ticket_id, p)
        # A ticket is raised (not an emergency yet) or doubted (one already), never both; an emergency
        # can be both refiled by its hazard and doubted.
        return [
            Effects(publish=[*mine.publish, *doubt.publish], writes=[*mine.writes, *doubt.writes])
            for mine, doubt in zip(done.effects, doubted.effects, strict=True)
        ]

    worker.consumers.append(
        Consumer(
            streams.CLASSIFIED,
            streams.URGENCY_REVIEW,
            TicketClassified,
            handle,
            writes_as=streams.CLASSIFIER,
        )
    )
    return worker, worker.asgi(make_broker(settings))


def yield_cpu(nice: int) -> str:
    """Take only CPU that no other process wants: Linux's SCHED_IDLE, for the process's threads and those it
    starts later (e5's, asyncio's), which inherit it. At nice 10 the reviewer still took a share from the
    loop at saturation beside it (bench/pipeline.py --no-urgency-review); under SCHED_IDLE it waits for idle
    time. Elsewhere, `nice`."""
    try:
        # Every thread: the imports have started some already (numpy's BLAS pool), which would otherwise
        # keep the normal policy.
        for task in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(task), os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        os.nice(nice)
        return f"nice {nice}"


def main() -> None:
    settings = ReviewSettings()
    # Spare CPU only: the classifier, dispatch and intake on the same node come first.
    log.info("running on spare CPU (%s)", yield_cpu(settings.nice))
    try:
        app = build(settings)[1]
    except (E5ModelError, ValueError) as exc:
        print(f"{SERVICE}: cannot start: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(app, settings)


if __name__ == "__main__":
    main()
