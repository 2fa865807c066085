"""Wiring of evaluation: three consumers, the survey loop, the rate gauges and the JSON API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import httpx
from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry
from pydantic import Field, model_validator

from services.evaluation.api import api_routes
from services.evaluation.gauges import RateGauges
from services.evaluation.handlers import Policy, on_answered, on_dispatched, on_updated, with_state
from services.evaluation.state import TicketState, load_states
from services.evaluation.surveys import SurveyConfig, SurveyDesk, SurveyMetrics
from shared import streams
from shared.bus import make_broker, redis_client
from shared.effects import Effects
from shared.events import Event, SurveyAnswered, TicketDispatched, TicketUpdated
from shared.outbound import OutboundSender, RetryPolicy
from shared.settings import CommonSettings, refuse_dev_credentials
from shared.worker import Consumer, Worker

E = TypeVar("E", bound=Event)

DEV_SURVEY_SECRET = (
    "whsec_aG90bGluZS1kZXZlbG9wbWVudC1zdXJ2ZXk="  # "hotline-development-survey"; make run only
)


class EvaluationSettings(CommonSettings):
    port: int = 8083
    timezone: str = Field(default="Asia/Shanghai", description="The city's zone: day/week/month buckets")
    survey_delay_seconds: float = Field(default=3600, ge=0, description="From resolution to the survey")
    survey_window_seconds: float = Field(
        default=3 * 86400, gt=0, description="From sending to 'not evaluated' if unanswered"
    )
    survey_gateway_url: str | None = Field(default=None, description="The SMS/IVR gateway; none: not sent")
    survey_secret: str = Field(default=DEV_SURVEY_SECRET, description="Signs requests to the gateway")
    survey_retry: RetryPolicy = RetryPolicy()
    survey_lease_seconds: float = Field(
        default=900, gt=0, description="A claimed survey returns to others after this (above all retries)"
    )
    survey_poll_seconds: float = Field(default=1.0, gt=0)
    supervision_after: int = Field(default=2, ge=1, description="Reopenings that flag a ticket for 督办")
    min_volume: int = Field(default=20, ge=1, description="Cases a unit needs in a window to be ranked")
    gauges_refresh_seconds: float = Field(default=15.0, gt=0)
    gauges_max_units: int = Field(default=200, ge=1, description="Units per dimension exported as gauges")

    @model_validator(mode="after")
    def _production_credentials(self) -> EvaluationSettings:
        # The secret only signs requests to a gateway: without one it is never used.
        dev = self.survey_gateway_url is not None and self.survey_secret == DEV_SURVEY_SECRET
        refuse_dev_credentials(self, ["survey_secret"] if dev else [])
        return self


def build(settings: EvaluationSettings | None = None) -> tuple[Worker, AsgiFastStream]:
    settings = settings or EvaluationSettings()
    tz = ZoneInfo(settings.timezone)
    policy = Policy(
        tz=tz,
        survey_delay=timedelta(seconds=settings.survey_delay_seconds),
        supervision_after=settings.supervision_after,
    )
    redis = redis_client(settings.redis_url)

    async def load(ticket_ids: list[str]) -> dict[str, TicketState]:
        return await load_states(redis, ticket_ids)

    registry = CollectorRegistry()
    gauges = RateGauges(redis, tz, settings.min_volume, settings.gauges_max_units)
    registry.register(gauges)
    http = httpx.AsyncClient(follow_redirects=False)
    desk = SurveyDesk(
        redis,
        SurveyConfig(
            gateway_url=settings.survey_gateway_url,
            window=timedelta(seconds=settings.survey_window_seconds),
            lease=timedelta(seconds=settings.survey_lease_seconds),
            poll_seconds=settings.survey_poll_seconds,
        ),
        policy,
        OutboundSender(http, settings.survey_secret, settings.survey_retry),
        SurveyMetrics(registry),
    )

    async def gauges_loop(stop: asyncio.Event) -> None:
        await gauges.run(stop, settings.gauges_refresh_seconds)

    async def surveys_loop(stop: asyncio.Event) -> None:
        try:
            await desk.run(stop)
        finally:
            await http.aclose()

    def consumer(
        stream: str, model: type[E], handler: Callable[[E, TicketState, Policy], Effects]
    ) -> Consumer[E]:
        return Consumer(stream, streams.EVALUATION, model, with_state(load, handler, policy))

    worker = Worker(
        service="evaluation",
        settings=settings,
        redis=redis,
        consumers=[
            consumer(streams.DISPATCHED, TicketDispatched, on_dispatched),
            consumer(streams.UPDATED, TicketUpdated, on_updated),
            consumer(streams.SURVEYS_ANSWERED, SurveyAnswered, on_answered),
        ],
        background=[surveys_loop, gauges_loop],
        registry=registry,
    )
    app = worker.asgi(
        make_broker(settings),
        extra_routes=api_routes(redis, tz, settings.min_volume, record_url=settings.database_url),
    )
    return worker, app
