"""The 三率 over HTTP (JSON), served by the evaluation worker on its own port.

- `GET /v1/rates?unit=department&window=month&bucket=2026-11`: every unit's counts and rates (raw,
  expected, the standardised ratio observed / expected, rank) and the city's; `unit` is department,
  district or category, `window` day, week or month, `bucket` defaults to the current one.
- `GET /v1/rankings?unit=department&rate=satisfaction&window=month&bucket=2026-11`: the ranking by one
  rate, and the units below the minimum volume apart.
- `GET /v1/supervision?limit=100`: tickets flagged for supervision (督办), latest first.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qs

from faststream.asgi import AsgiResponse, get
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.evaluation.rates import (
    DIMENSIONS,
    RATE_NAMES,
    WINDOWS,
    Dimension,
    RateName,
    Window,
    board,
    bucket_of,
    check_bucket,
    load_table,
    ranking,
)
from shared.store import keys


class BadRequestError(ValueError):
    pass


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body, ensure_ascii=False).encode(),
        status,
        headers={"content-type": "application/json", **(headers or {})},
    )


def _error(message: str) -> AsgiResponse:
    return _json({"error": {"code": "bad_request", "message": message}}, 400)


def _storage_guarded(
    route: Callable[[Any], Awaitable[AsgiResponse]],
) -> Callable[[Any], Awaitable[AsgiResponse]]:
    """Redis out of reach is an outage, not a bug: 503 with Retry-After (as intake does), not a 500."""

    @functools.wraps(route)
    async def guarded(scope: Any) -> AsgiResponse:
        try:
            return await route(scope)
        except (RedisError, OSError) as exc:
            message = f"storage unavailable, retry later ({type(exc).__name__})"
            return _json({"error": {"code": "unavailable", "message": message}}, 503, {"retry-after": "5"})

    return guarded


def _choice(params: dict[str, list[str]], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(name, [default])[-1]
    if value not in allowed:
        raise BadRequestError(f"{name} must be one of: {', '.join(allowed)}")
    return value


def api_routes(
    redis: Redis, tz: tzinfo, min_volume: int, clock: Callable[[], float] = time.time
) -> list[tuple[str, Any]]:
    async def read_board(scope: Any) -> tuple[dict[str, list[str]], Any]:
        params = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
        window: Window = _choice(params, "window", WINDOWS, "month")  # type: ignore[assignment]
        default_bucket = bucket_of(window, datetime.fromtimestamp(clock(), UTC), tz)
        try:
            bucket = check_bucket(window, params.get("bucket", [default_bucket])[-1])
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        return params, board(await load_table(redis, window, bucket), window, bucket, min_volume)

    @get(description="The 三率 of every department, district or category in one window")
    @_storage_guarded
    async def rates(scope: Any) -> AsgiResponse:
        try:
            params, b = await read_board(scope)
            dimension: Dimension = _choice(params, "unit", DIMENSIONS, "department")  # type: ignore[assignment]
        except BadRequestError as exc:
            return _error(str(exc))
        return _json(
            {
                "unit": dimension,
                "window": b.window,
                "bucket": b.bucket,
                "min_volume": b.min_volume,
                "city": b.city.model_dump(mode="json"),
                "units": [u.model_dump(mode="json") for u in b.units[dimension]],
            }
        )

    @get(description="Ranking of departments, districts or categories by one rate, adjusted for case mix")
    @_storage_guarded
    async def rankings(scope: Any) -> AsgiResponse:
        try:
            params, b = await read_board(scope)
            dimension: Dimension = _choice(params, "unit", DIMENSIONS, "department")  # type: ignore[assignment]
            rate: RateName = _choice(params, "rate", RATE_NAMES, "satisfaction")  # type: ignore[assignment]
        except BadRequestError as exc:
            return _error(str(exc))
        ranked, unranked = ranking(b.units[dimension], rate)
        return _json(
            {
                "unit": dimension,
                "rate": rate,
                "window": b.window,
                "bucket": b.bucket,
                "min_volume": b.min_volume,
                "ranked": [r.model_dump(mode="json") for r in ranked],
                "below_min_volume": [r.model_dump(mode="json") for r in unranked],
            }
        )

    @get(description="Tickets flagged for supervision (督办), latest first")
    @_storage_guarded
    async def supervision(scope: Any) -> AsgiResponse:
        params = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
        try:
            limit = int(params.get("limit", ["100"])[-1])
        except ValueError:
            return _error("limit must be an integer")
        if not 1 <= limit <= 1000:
            return _error("limit must be between 1 and 1000")
        rows: list[Any] = await redis.zrevrange(keys.supervision, 0, limit - 1, withscores=True)
        return _json(
            {
                "total": await redis.zcard(keys.supervision),
                "tickets": [
                    {
                        "ticket_id": m.decode(),
                        "flagged_at": datetime.fromtimestamp(score, UTC).isoformat(),
                    }
                    for m, score in rows
                ],
            }
        )

    return [("/v1/rates", rates), ("/v1/rankings", rankings), ("/v1/supervision", supervision)]
