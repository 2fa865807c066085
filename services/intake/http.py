"""HTTP plumbing shared by intake's routes: capped bodies, problem responses, metrics, 503 on outages."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("hotline.intake")

# Redis, or the record (PostgreSQL: a search over history, a ticket brought back), cannot be reached.
UNREACHABLE = (
    RedisError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


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
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields, headers


Renderer = Callable[[Request, HttpError], Response]
# Set on a request's state when its authentication failed: (route, why).
AUTH_FAILED = "auth_failed"


def problem(request: Request, error: HttpError) -> Response:
    body: dict[str, Any] = {"error": {"code": error.code, "message": error.message}}
    if error.fields:
        body["error"]["fields"] = error.fields
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes whether or not Content-Length tells the truth."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise HttpError(
            415, "unsupported_media_type", "Content-Encoding is not supported: send the body as is"
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HttpError(400, "bad_request", "invalid Content-Length") from None
        if size > limit:
            raise HttpError(413, "too_large", f"body exceeds {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, "too_large", f"body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer; 499 (nginx's "client closed request") keeps it out of the 5xx.
        raise HttpError(499, "client_disconnected", "the client hung up before sending the body") from None
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_content_type(request: Request, *allowed: str) -> None:
    if media_type(request) not in allowed:
        raise HttpError(415, "unsupported_media_type", f"Content-Type must be one of: {', '.join(allowed)}")
    params = request.headers.get("content-type", "").lower().split(";")[1:]
    charset = next(
        (v.strip(' "') for n, _, v in (p.partition("=") for p in params) if n.strip() == "charset"), ""
    )
    if charset and charset not in ("utf-8", "utf8"):
        raise HttpError(415, "unsupported_media_type", "the charset must be UTF-8")


def validation_error(exc: ValidationError) -> HttpError:
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]) or "<body>", "problem": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return HttpError(422, "invalid_payload", "the payload does not match the schema", fields)


def parse_json(model: type[M], body: bytes) -> M:
    """The body as `model`: 400 when it is not JSON (or not UTF-8), 422 naming the fields otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] in ("json_invalid", "json_type") for e in exc.errors()):
            raise HttpError(400, "invalid_json", "the body is not valid UTF-8 JSON") from None
        raise validation_error(exc) from None


def parse_fields(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """A urlencoded form as (name, value) pairs, repeats kept in order."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "bad_form", "the body is not a UTF-8 form (at most 1000 fields)") from None


async def available(pending: Awaitable[T]) -> T:
    """Await a call on Redis or the record; if it is unreachable answer 503 so the caller (or provider)
    retries later."""
    try:
        return await pending
    except UNREACHABLE as exc:
        raise HttpError(
            503,
            "unavailable",
            f"storage unavailable, retry later ({type(exc).__name__})",
            headers={"Retry-After": "5"},
        ) from None


def client_ip(request: Request) -> str:
    # `client` is the peer, or the client a trusted proxy names (HOTLINE_TRUSTED_PROXIES, see app.py).
    return request.client.host if request.client else "unknown"


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


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
            "hotline_intake_signature_failures",
            "Requests refused for a bad or missing signature or credential",
            ["route"],
            registry=registry,
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
        self.events = Counter(
            "hotline_intake_events_published",
            "Department actions, survey answers and label corrections stored, by kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )


Endpoint = Callable[[Request], Awaitable[Response]]


def instrumented(
    route: str, metrics: IntakeMetrics, endpoint: Endpoint, render: Renderer = problem
) -> Endpoint:
    """Time the endpoint, turn HttpError into its response (JSON problem or the route's own), count by status.

    Anything else that escapes is a bug: it is logged (without the request body) and answered 500
    rather than dropping the connection, and the 500 shows on the dashboards.
    """
    latency = metrics.latency.labels(route)
    by_status: dict[int, Counter] = {}  # labels() takes a lock and builds a key on every call

    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await endpoint(request)
        except HttpError as exc:
            if exc.status == 401 or exc.code == "bad_api_key":
                metrics.signature_failures.labels(route).inc()
                # for the throttle (auth_throttle.py), which also logs it, at most once a minute per client
                setattr(request.state, AUTH_FAILED, (route, exc.message))
            metrics.rejected.labels(route, exc.code).inc()
            response = render(request, exc)
        except Exception:
            log.exception("%s: unhandled error", route)
            response = render(request, HttpError(500, "internal", "internal error"))
        status = response.status_code
        counter = by_status.get(status)
        if counter is None:
            counter = by_status[status] = metrics.requests.labels(route, str(status))
        counter.inc()
        latency.observe(time.perf_counter() - started)
        return response

    return wrapper
