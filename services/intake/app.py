"""Wiring of intake, the only HTTP ingress: routes, settings, the Redis connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app
from pydantic import Field, ValidationError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from services.intake import signatures
from services.intake.handlers import TicketIntake
from services.intake.http import (
    HttpError,
    IntakeMetrics,
    instrumented,
    read_body,
    require_content_type,
    validation_error,
)
from services.intake.models import TelephonyCall
from services.intake.privacy import caller_ref
from services.intake.surveys import survey_routes
from shared.bus import redis_client
from shared.events import TicketReceived, utcnow
from shared.ids import derive_id, ticket_id_for
from shared.settings import CommonSettings

DEV_SECRET = "whsec_aG90bGluZS1kZXZlbG9wbWVudC1zZWNyZXQ="  # "hotline-development-secret"; for make run only


class IntakeSettings(CommonSettings):
    port: int = 8080
    webhook_secrets: list[str] = Field(
        default=[DEV_SECRET], description="Standard Webhooks secrets (rotation)"
    )
    caller_hash_key: str = "hotline-development-caller-key"
    max_body_bytes: int = 256 * 1024


def create_app(settings: IntakeSettings | None = None) -> Starlette:
    settings = settings or IntakeSettings()
    registry = CollectorRegistry()
    metrics = IntakeMetrics(registry)
    redis = redis_client(settings.redis_url)
    intake = TicketIntake(redis, settings.stream_maxlen)

    async def telephony(request: Request) -> Response:
        require_content_type(request, "application/json")
        body = await read_body(request, settings.max_body_bytes)
        try:
            webhook_id = signatures.verify(settings.webhook_secrets, request.headers, body)
        except signatures.SignatureError as exc:
            raise HttpError(401, "bad_signature", str(exc)) from None
        try:
            call = TelephonyCall.model_validate_json(body)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise HttpError(400, "invalid_json", "the body is not valid JSON") from None
            raise validation_error(exc) from None
        ticket_id = ticket_id_for("telephony", call.call_id)
        now = utcnow()
        event = TicketReceived(
            event_id=derive_id(ticket_id, "received"),
            ticket_id=ticket_id,
            occurred_at=now,
            channel="telephony",
            source_id=call.call_id,
            text=call.text(),
            language=call.language,
            caller=caller_ref(call.caller, settings.caller_hash_key.encode()) if call.caller else None,
            location=call.location,
            ivr_choice=call.ivr_choice,
            received_at=now,
        )
        accepted = await store_or_unavailable(intake.accept(event, delivery_id=webhook_id))
        metrics.tickets.labels("telephony", "duplicate" if accepted.duplicate else "new").inc()
        return JSONResponse(
            {"ticket_id": accepted.ticket_id, "duplicate": accepted.duplicate}, status_code=202
        )

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(redis.ping(), timeout=2.0)
        except (RedisError, OSError, TimeoutError):
            return PlainTextResponse("redis unavailable", status_code=503)
        return PlainTextResponse("ready")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app = Starlette(
        routes=[
            Route("/v1/webhooks/telephony", instrumented("telephony", metrics, telephony), methods=["POST"]),
            *survey_routes(settings, redis, metrics),
            Route("/livez", livez),
            Route("/readyz", readyz),
            Mount("/metrics", make_asgi_app(registry)),
        ],
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.redis = redis
    app.state.settings = settings
    return app


async def store_or_unavailable(pending: Any) -> Any:
    """Await a Redis write; if Redis is unreachable answer 503 so the provider retries later."""
    try:
        return await pending
    except (RedisError, OSError) as exc:
        raise HttpError(
            503,
            "unavailable",
            f"storage unavailable, retry later ({type(exc).__name__})",
            headers={"Retry-After": "5"},
        ) from None


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": {"code": "not_found", "message": "no such route"}}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": {"code": "method_not_allowed", "message": "method not allowed"}}, status_code=405
    )
