"""What every intake route needs, built once in `create_app` and handed to each channel's routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.intake.actions import Actions, too_many
from services.intake.credentials import Credentials
from services.intake.history import OpenRecord
from services.intake.http import (
    HttpError,
    IntakeMetrics,
    available,
    parse_json,
    read_body,
    require_content_type,
)
from services.intake.settings import IntakeSettings
from services.intake.writes import (
    Accepted,
    EventPublisher,
    Published,
    Rate,
    RateLimited,
    RateLimiter,
    TicketIntake,
    rate_key,
)
from shared import standard_webhooks
from shared.events import Channel, Event, TicketReceived, utcnow
from shared.ids import derive_id, ticket_id_for
from shared.pii import masked, phone_ref, redact
from shared.rehydration import reader_for
from shared.store import TicketStore
from shared.taxonomy import ConfigError, Taxonomy

M = TypeVar("M", bound=BaseModel)


class _Department(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str


class _Directory(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    departments: list[_Department] = Field(min_length=1)


def load_department_names(path: Path) -> dict[str, str]:
    """Department id -> name, from the routing table dispatch uses (intake needs only who exists)."""
    try:
        directory = _Directory.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return {d.id: d.name for d in directory.departments}


@dataclass
class Deps:
    settings: IntakeSettings
    redis: Redis
    metrics: IntakeMetrics
    taxonomy: Taxonomy
    department_names: dict[str, str]
    operator_tokens: Credentials
    open311_keys: Credentials
    supervisor_tokens: Credentials

    def __post_init__(self) -> None:
        record = reader_for(self.settings.database_url, strict=True)
        self.store = TicketStore(self.redis, record)
        self.intake = TicketIntake(self.redis, self.settings.stream_maxlen)
        self.publisher = EventPublisher(self.redis, self.settings.stream_maxlen)
        self.limiter = RateLimiter(self.redis)
        self.zone = ZoneInfo(self.settings.timezone)
        self.actions = Actions(
            self.redis,
            stream_maxlen=self.settings.stream_maxlen,
            categories=self.taxonomy.codes(),
            departments=self.department_names,
            count=lambda kind, outcome: self.metrics.events.labels(kind, outcome).inc(),
        )
        self.record = OpenRecord(record) if record else None

    def rate(self, kind: str, source: str) -> Rate:
        return Rate(rate_key(kind, source), self.settings.rate_limits.get(kind, 1_000_000), self.window)

    @property
    def window(self) -> int:
        return self.settings.rate_window_seconds

    async def limit(self, kind: str, source: str) -> None:
        """Count a request of `source` (for routes that write nothing, or check before writing)."""
        limited_for = await available(self.limiter.hit(self.rate(kind, source)))
        if limited_for:
            raise too_many(limited_for)

    async def signed_json(self, request: Request, secrets: list[str], model: type[M]) -> tuple[str, M]:
        """A Standard Webhooks request: (webhook id, the body as `model`), or the precise refusal."""
        require_content_type(request, "application/json")
        body = await read_body(request, self.settings.max_body_bytes)
        try:
            webhook_id = standard_webhooks.verify(secrets, request.headers, body)
        except standard_webhooks.SignatureError as exc:
            raise HttpError(401, "bad_signature", str(exc)) from None
        return webhook_id, parse_json(model, body)

    def received(
        self, channel: Channel, source_id: str, *, text: str, caller: str | None, **details: Any
    ) -> TicketReceived:
        """A new ticket's event: its id follows from the provider's id, the caller is kept only hashed, and
        personal data in the text, title, address and answers is masked (numbers said kept hashed)."""
        ticket_id = ticket_id_for(channel, source_id)
        now = utcnow()
        key = self.settings.caller_hash_key.encode()
        said = redact(text, key)
        if (location := details.get("location")) is not None and location.address:
            details["location"] = location.model_copy(update={"address": masked(location.address)})
        if details.get("attributes"):
            details["attributes"] = {k: [masked(v) for v in vs] for k, vs in details["attributes"].items()}
        if details.get("title"):
            details["title"] = masked(details["title"])
        return TicketReceived(
            event_id=derive_id(ticket_id, "received"),
            ticket_id=ticket_id,
            occurred_at=now,
            channel=channel,
            source_id=source_id,
            text=said.text,
            caller=phone_ref(caller, key) if caller else None,
            contacts=list(said.phones) or None,
            received_at=now,
            **details,
        )

    async def accept(
        self, event: TicketReceived, *, delivery_id: str | None, rate: Rate, fingerprint: str | None = None
    ) -> Accepted:
        """Store a new ticket (or find the one a retry already made), counting it in the metrics."""
        result = await available(
            self.intake.accept(event, delivery_id=delivery_id, rate=rate, fingerprint=fingerprint)
        )
        if isinstance(result, RateLimited):
            raise too_many(result)
        self.metrics.tickets.labels(event.channel, "duplicate" if result.duplicate else "new").inc()
        return result

    async def publish_once(self, kind: str, stream: str, event: Event, **options: Any) -> Published:
        """Publish an event about an existing ticket once (see `Actions.publish_once`)."""
        return await self.actions.publish_once(kind, stream, event, **options)


def accepted(result: Accepted) -> JSONResponse:
    return JSONResponse({"ticket_id": result.ticket_id, "duplicate": result.duplicate}, status_code=202)


def published(result: Published) -> JSONResponse:
    return JSONResponse(
        {"event_id": result.event_id, "duplicate": result.outcome == "duplicate"}, status_code=202
    )
