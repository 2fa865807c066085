"""The week's plan from what insight keeps in Redis: the counts, the hour profile, the calls' durations.

`hotline plan --week` prints it; insight's background pass stores it hourly as JSON in `PLAN`
(`hotline:insight:plan`), which intake serves to supervisors (`GET /v1/supervisors/plan`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from services.dispatch.routing import RoutingTable
from services.insight import state
from services.insight.plan import CallTargets, WeekPlan, forecast_series, hour_profile, plan_week
from shared.store import PREFIX, TicketStore

PLAN = f"{PREFIX}:insight:plan"
HISTORY_WEEKS = 16
PROFILE_DAYS = 28
SAMPLE = 5000  # the newest calls whose durations give the handling time
MIN_MEASURED = 20


async def week_plan(
    redis: Redis, today: date, routing: RoutingTable, targets: CallTargets, measure: bool
) -> tuple[WeekPlan, CallTargets, str]:
    """The plan, the targets it used and where the handling time came from."""
    source = "given"
    if measure:
        measured, calls = await handle_seconds(redis, today)
        if measured is None:
            source = f"default: only {calls} recent calls with a duration, fewer than {MIN_MEASURED}"
        else:
            targets, source = (
                replace(targets, handle_seconds=measured),
                f"measured: mean of {calls} recent calls",
            )

    last = today - timedelta(days=1)
    daily = await state.load_daily(redis, last - timedelta(days=7 * HISTORY_WEEKS - 1), last)
    first_profile = today - timedelta(days=PROFILE_DAYS)
    profile = hour_profile(await state.load_hourly(redis, first_profile, PROFILE_DAYS), first_profile)
    # The forecasts and the Erlang searches take a second or more: off the event loop (insight's consumer).
    series = await asyncio.to_thread(
        forecast_series, daily, last - timedelta(days=7 * HISTORY_WEEKS - 1), last
    )
    return await asyncio.to_thread(plan_week, series, profile, today, routing, targets), targets, source


async def handle_seconds(redis: Redis, today: date) -> tuple[float | None, int]:
    """The mean length of the newest calls (up to SAMPLE) with a duration, over the profile's weeks; None
    when fewer than MIN_MEASURED have one."""
    store = TicketStore(redis)
    end = datetime(today.year, today.month, today.day, tzinfo=UTC)
    ids = await store.recent_ids(end - timedelta(days=PROFILE_DAYS), end, SAMPLE, newest_first=True)
    found = await store.get_many(ids, fields=("handle_seconds",))
    seconds = [float(str((t.model_extra or {})["handle_seconds"])) for t in found if t and t.model_extra]
    if len(seconds) < MIN_MEASURED:
        return None, len(seconds)
    return sum(seconds) / len(seconds), len(seconds)


def as_json(plan: WeekPlan, targets: CallTargets, source: str, made_at: datetime) -> dict[str, Any]:
    """The plan for the console: one row per hour and per department-day, as the CSV files have them."""
    return {
        "made_at": made_at.isoformat(),
        "first_day": plan.first_day.isoformat(),
        "targets": {
            "level": targets.level,
            "within_seconds": targets.within_seconds,
            "handle_seconds": round(targets.handle_seconds, 1),
            "handle_seconds_source": source,
            "patience_seconds": targets.patience_seconds,
        },
        "hours": [
            {
                "start": h.start.isoformat(),
                "calls": round(h.calls, 2),
                "agents_erlang_c": h.erlang_c.agents,
                "agents_erlang_a": h.erlang_a.agents,
                "abandoned_erlang_a": round(h.erlang_a.abandoned, 4),
                "service_level_erlang_a": round(h.erlang_a.service_level, 4),
            }
            for h in plan.hours
        ],
        "departments": [
            {
                "department": d.department,
                "day": d.day.isoformat(),
                "expected": round(d.expected, 2),
                "capacity": round(d.capacity, 2),
                "backlog": round(d.backlog, 2),
                "short": d.short,
            }
            for d in plan.departments
        ],
    }
