"""Insight's state in Redis: key names, and the reads that prepare a batch for the handlers.

- hourly counts: one hash per UTC day, `hotline:insight:hourly:{YYYY-MM-DD}`, field `{series}|{HH}`,
  kept `HOURLY_TTL` (the baseline reads the last `history_days`);
- daily counts: one hash per month, `hotline:insight:daily:{YYYY-MM}`, field `{series}|{DD}` (forecasts
  and the 每月一题 ranking read these);
- episodes: one hash, series -> the episode's JSON (one alert per episode);
- a few recent ticket ids per series, as an alert's examples.

A series is `{category}|{district or -}`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
from redis.asyncio import Redis

from services.insight.surge import Baseline, Episode, SurgeConfig, fit
from shared.bus import RoundTrip, as_str
from shared.effects import Expire, Increment, ListPushCapped, Op
from shared.store import PREFIX

HOURLY_TTL = 40 * 86400
DAILY_TTL = 800 * 86400
RECENT_TTL = 3 * 86400
RECENT_KEEP = 10
NO_DISTRICT = "-"

EPISODES = f"{PREFIX}:insight:episodes"
EMERGING = f"{PREFIX}:insight:emerging"
FORECAST = f"{PREFIX}:insight:forecast"
BACKGROUND_LEASE = f"{PREFIX}:insight:background-lease"


def series_key(category: str, district: str | None) -> str:
    return f"{category}|{district or NO_DISTRICT}"


def split_series(series: str) -> tuple[str, str | None]:
    category, _, district = series.rpartition("|")
    return category, None if district == NO_DISTRICT else district


def hour_index(at: datetime) -> int:
    return int(at.timestamp() // 3600)


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def hourly_key(day: date) -> str:
    return f"{PREFIX}:insight:hourly:{day.isoformat()}"


def daily_key(year: int, month: int) -> str:
    return f"{PREFIX}:insight:daily:{year:04d}-{month:02d}"


def recent_key(series: str) -> str:
    return f"{PREFIX}:insight:recent:{series}"


def count_ops(series: str, at: datetime, ticket_id: str) -> list[Op]:
    """The ops that count one ticket in its hour and day, and keep it as a recent example."""
    hourly, daily, recent = hourly_key(at.date()), daily_key(at.year, at.month), recent_key(series)
    return [
        Increment(hourly, f"{series}|{at.hour:02d}"),
        Expire(hourly, HOURLY_TTL),
        Increment(daily, f"{series}|{at.day:02d}"),
        Expire(daily, DAILY_TTL),
        ListPushCapped(recent, ticket_id, RECENT_KEEP),
        Expire(recent, RECENT_TTL),
    ]


def episode_json(episode: Episode) -> str:
    return json.dumps(asdict(episode), separators=(",", ":"))


async def load_hourly(redis: Redis, first_day: date, days: int) -> dict[str, np.ndarray]:
    """Hourly counts of every series seen from `first_day` for `days` days (index 0 = its 00 UTC)."""
    async with redis.pipeline(transaction=False) as pipe:
        for d in range(days):
            pipe.hgetall(hourly_key(first_day + timedelta(days=d)))
        rows = await pipe.execute()
    out: dict[str, np.ndarray] = {}
    for d, row in enumerate(rows):
        for field, value in row.items():
            series, _, hh = as_str(field).rpartition("|")
            arr = out.get(series)
            if arr is None:
                arr = out[series] = np.zeros(days * 24, dtype=np.int64)
            arr[d * 24 + int(hh)] = int(value)
    return out


async def load_daily(redis: Redis, first_day: date, last_day: date) -> dict[str, dict[date, int]]:
    """Daily counts per series between two days (inclusive)."""
    months: list[tuple[int, int]] = []
    y, m = first_day.year, first_day.month
    while (y, m) <= (last_day.year, last_day.month):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    async with redis.pipeline(transaction=False) as pipe:
        for y, m in months:
            pipe.hgetall(daily_key(y, m))
        rows = await pipe.execute()
    out: dict[str, dict[date, int]] = {}
    for (y, m), row in zip(months, rows, strict=True):
        for field, value in row.items():
            series, _, dd = as_str(field).rpartition("|")
            day = date(y, m, int(dd))
            if first_day <= day <= last_day:
                out.setdefault(series, {})[day] = int(value)
    return out


async def load_counts(
    redis: Redis, series: set[str], hours: set[int], window: int
) -> dict[str, dict[int, int]]:
    """The counts of `series` over every hour a window ending at one of `hours` covers."""
    needed = sorted({h - back for h in hours for back in range(window)})
    # One HMGET per day's hash: a batch needs a day of hours for each of its series, which one command
    # per field made a thousand round-trip entries.
    by_key: dict[str, list[tuple[str, int, str]]] = {}
    for h in needed:
        at = datetime.fromtimestamp(h * 3600, UTC)
        fields = by_key.setdefault(hourly_key(at.date()), [])
        fields.extend((s, h, f"{s}|{at.hour:02d}") for s in sorted(series))
    trip = RoundTrip(redis, transaction=False)
    for key, fields in by_key.items():
        trip.command("HMGET", key, *(f for _, _, f in fields))
    replies = await trip.execute()
    out: dict[str, dict[int, int]] = {s: {} for s in series}
    for fields, values in zip(by_key.values(), replies, strict=True):
        for (s, h, _), value in zip(fields, values, strict=True):
            if value is not None:
                out[s][h] = int(value)
    return out


async def load_episodes(redis: Redis, series: set[str]) -> dict[str, Episode]:
    names = sorted(series)
    values = await redis.hmget(EPISODES, names) if names else []
    return {s: Episode(**json.loads(v)) for s, v in zip(names, values, strict=True) if v is not None}


async def load_all_episodes(redis: Redis) -> list[Episode]:
    return [Episode(**json.loads(v)) for v in (await redis.hgetall(EPISODES)).values()]


async def load_recent(redis: Redis, series: set[str]) -> dict[str, list[str]]:
    names = sorted(series)
    trip = RoundTrip(redis, transaction=False)
    for s in names:
        trip.command("LRANGE", recent_key(s), 0, RECENT_KEEP - 1)
    rows = await trip.execute()
    return {s: [as_str(t) for t in row] for s, row in zip(names, rows, strict=True)}


class BaselineCache:
    """The baseline of each day, fitted on the `history_days` before it, refitted at most every `ttl` s.

    Every replica fits the same baseline from the same counts, so their decisions agree.
    """

    def __init__(self, redis: Redis, config: SurgeConfig, ttl: float = 900.0) -> None:
        self.redis = redis
        self.config = config
        self.ttl = ttl
        self._cache: dict[date, tuple[float, Baseline]] = {}

    async def for_day(self, day: date) -> Baseline:
        cached = self._cache.get(day)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        days = self.config.history_days
        first = day - timedelta(days=days)
        history = await load_hourly(self.redis, first, days)
        seen = [d for d in range(days) if any(a[d * 24 : d * 24 + 24].any() for a in history.values())]
        baseline = fit(
            history,
            hour_index(datetime(first.year, first.month, first.day, tzinfo=UTC)),
            self.config,
            days_of_history=days - seen[0] if seen else 0,
        )
        if len(self._cache) > 4:
            self._cache.clear()
        self._cache[day] = (time.monotonic(), baseline)
        return baseline
