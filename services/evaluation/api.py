"""The 三率 over HTTP (JSON), served by the evaluation worker on its own port.

- `GET /v1/rates?unit=department&window=month&bucket=2026-11`: every unit's counts and rates (raw,
  expected, the standardised ratio observed / expected, rank) and the city's; `unit` is department,
  district or category, `window` day, week or month, `bucket` defaults to the current one.
- `GET /v1/rankings?unit=department&rate=satisfaction&window=month&bucket=2026-11`: the ranking by one
  rate, and the units below the minimum volume apart.
- `GET /v1/supervision?limit=100`: tickets flagged for supervision (督办), latest first.

Instead of `window` and `bucket`, `from` and `to` (local dates, `to` excluded) ask for any span, a
quarter or three years: counted from the record in PostgreSQL (services/evaluation/record_rates.py),
which needs DATABASE_URL.
"""

from __future__ import annotations

import functools
import json
import time as clocks
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from urllib.parse import parse_qs

import asyncpg
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
from services.evaluation.record_rates import daily_tables, summed
from shared.rehydration import reader_for
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
    """Redis or the record out of reach is an outage, not a bug: 503 with Retry-After (as intake does)."""

    @functools.wraps(route)
    async def guarded(scope: Any) -> AsgiResponse:
        try:
            return await route(scope)
        except (RedisError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            message = f"storage unavailable, retry later ({type(exc).__name__})"
            return _json({"error": {"code": "unavailable", "message": message}}, 503, {"retry-after": "5"})

    return guarded


def _choice(params: dict[str, list[str]], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(name, [default])[-1]
    if value not in allowed:
        raise BadRequestError(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _day(params: dict[str, list[str]], name: str) -> date:
    try:
        return date.fromisoformat(params[name][-1])
    except ValueError:
        raise BadRequestError(f"{name} must be a date, e.g. 2025-01-01") from None


MAX_SPAN_DAYS = 5 * 366


def api_routes(
    redis: Redis,
    tz: tzinfo,
    min_volume: int,
    clock: Callable[[], float] = clocks.time,
    record_url: str | None = None,
) -> list[tuple[str, Any]]:
    record = reader_for(record_url, strict=True)

    async def read_span(params: dict[str, list[str]]) -> tuple[dict[str, list[str]], Any, dict[str, str]]:
        if "from" not in params or "to" not in params:
            raise BadRequestError("from and to go together")
        if "window" in params or "bucket" in params:
            raise BadRequestError("give either window and bucket, or from and to")
        first, end = _day(params, "from"), _day(params, "to")
        if not first < end or (end - first).days > MAX_SPAN_DAYS:
            raise BadRequestError(f"from must be before to, at most {MAX_SPAN_DAYS} days apart")
        if record is None:
            raise BadRequestError("from and to are read from the record: this service has no DATABASE_URL")
        start, stop = datetime.combine(first, time(), tz), datetime.combine(end, time(), tz)
        table = summed(list((await daily_tables(record, start, stop, tz)).values()))
        span = f"{first.isoformat()}/{end.isoformat()}"
        where = {"window": "span", "from": first.isoformat(), "to": end.isoformat()}
        return params, board(table, "day", span, min_volume), where

    async def read_board(scope: Any) -> tuple[dict[str, list[str]], Any, dict[str, str]]:
        params = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
        if "from" in params or "to" in params:
            return await read_span(params)
        window: Window = _choice(params, "window", WINDOWS, "month")  # type: ignore[assignment]
        default_bucket = bucket_of(window, datetime.fromtimestamp(clock(), UTC), tz)
        try:
            bucket = check_bucket(window, params.get("bucket", [default_bucket])[-1])
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        b = board(await load_table(redis, window, bucket), window, bucket, min_volume)
        return params, b, {"window": window, "bucket": bucket}

    @get(description="The 三率 of every department, district or category in one window")
    @_storage_guarded
    async def rates(scope: Any) -> AsgiResponse:
        try:
            params, b, where = await read_board(scope)
            dimension: Dimension = _choice(params, "unit", DIMENSIONS, "department")  # type: ignore[assignment]
        except BadRequestError as exc:
            return _error(str(exc))
        return _json(
            {
                "unit": dimension,
                **where,
                "min_volume": b.min_volume,
                "city": b.city.model_dump(mode="json"),
                "units": [u.model_dump(mode="json") for u in b.units[dimension]],
            }
        )

    @get(description="Ranking of departments, districts or categories by one rate, adjusted for case mix")
    @_storage_guarded
    async def rankings(scope: Any) -> AsgiResponse:
        try:
            params, b, where = await read_board(scope)
            dimension: Dimension = _choice(params, "unit", DIMENSIONS, "department")  # type: ignore[assignment]
            rate: RateName = _choice(params, "rate", RATE_NAMES, "satisfaction")  # type: ignore[assignment]
        except BadRequestError as exc:
            return _error(str(exc))
        ranked, unranked = ranking(b.units[dimension], rate)
        return _json(
            {
                "unit": dimension,
                "rate": rate,
                **where,
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
