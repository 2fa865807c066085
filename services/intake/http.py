"""HTTP plumbing shared by intake's routes: capped body reading, problem responses, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.intake import signatures

M = TypeVar("M", bound=BaseModel)


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields, self.headers = (
            status,
            code,
            message,
            fields,
            headers,
        )


def problem(error: HttpError) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": error.code, "message": error.message}}
    if error.fields:
        body["error"]["fields"] = error.fields
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes whether or not Content-Length tells the truth."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HttpError(413, "too_large", f"body exceeds {limit} bytes")
        except ValueError:
            raise HttpError(400, "bad_request", "invalid Content-Length") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_content_type(request: Request, *allowed: str) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in allowed:
        raise HttpError(415, "unsupported_media_type", f"Content-Type must be one of: {', '.join(allowed)}")


def validation_error(exc: ValidationError) -> HttpError:
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]) or "<body>", "problem": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return HttpError(422, "invalid_payload", "the payload does not match the schema", fields)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "hotline_intake_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "hotline_intake_request_duration_seconds",
            "Request handling time by route",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.signature_failures = Counter(
            "hotline_intake_signature_failures", "Requests with a bad signature", ["route"], registry=registry
        )
        self.rejected = Counter(
            "hotline_intake_rejected_payloads",
            "Requests refused, by reason",
            ["route", "reason"],
            registry=registry,
        )
        self.tickets = Counter(
            "hotline_intake_tickets_accepted",
            "Tickets accepted, by channel and outcome",
            ["channel", "outcome"],
            registry=registry,
        )


Endpoint = Callable[[Request], Awaitable[Response]]


def instrumented(route: str, metrics: IntakeMetrics, endpoint: Endpoint) -> Endpoint:
    """Time the endpoint, turn HttpError into its response, and count by status."""

    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await endpoint(request)
        except HttpError as exc:
            if exc.status == 401:
                metrics.signature_failures.labels(route).inc()
            metrics.rejected.labels(route, exc.code).inc()
            response = problem(exc)
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    return wrapper


async def signed_json(request: Request, secrets: Sequence[str], limit: int, model: type[M]) -> tuple[str, M]:
    """(webhook id, payload) of a Standard Webhooks signed JSON post, or HttpError 415/413/401/400/422."""
    require_content_type(request, "application/json")
    body = await read_body(request, limit)
    try:
        webhook_id = signatures.verify(secrets, request.headers, body)
    except signatures.SignatureError as exc:
        raise HttpError(401, "bad_signature", str(exc)) from None
    try:
        return webhook_id, model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise HttpError(400, "invalid_json", "the body is not valid JSON") from None
        raise validation_error(exc) from None
