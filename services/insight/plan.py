"""The week's plan from the forecast: call-centre agents per hour, and each department's load against its
capacity (routing.yaml), with the days it will be short.

Each category x district series gets its own 7-day forecast (the same Holt-Winters as the city's); its
days are spread over the hours by the hour-of-week profile the line has shown over the last weeks, and
sent to the department static routing gives it. A department's capacity on a day is its hourly rate
(capacity spread over its working week) times the hours it works that day, so weekends and short days
show up as the days it falls behind; what it cannot do carries over to the next day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from services.dispatch.routing import RoutingTable
from services.insight.forecast import HORIZON, dense_daily, forecast
from services.insight.staffing import Staffing, agents_needed
from services.insight.state import split_series


@dataclass(frozen=True)
class CallTargets:
    handle_seconds: float = 300.0
    level: float = 0.8  # share of callers answered...
    within_seconds: float = 20.0  # ...within this wait (the classic 80/20)
    patience_seconds: float = 120.0  # mean time a caller waits before hanging up (Erlang A)


@dataclass(frozen=True)
class HourPlan:
    start: datetime  # local time
    calls: float
    erlang_c: Staffing
    erlang_a: Staffing


@dataclass(frozen=True)
class DepartmentDay:
    department: str
    day: date  # local date
    expected: float
    capacity: float
    backlog: float  # left undone at the end of the day, carried over

    @property
    def short(self) -> bool:
        return self.backlog > 0.5


@dataclass(frozen=True)
class WeekPlan:
    first_day: date  # the first day planned (the city's date)
    hours: list[HourPlan]
    departments: list[DepartmentDay]
    series_forecast: dict[str, list[float]]


def hour_profile(hourly: Mapping[str, np.ndarray], first_day: date) -> np.ndarray:
    """7 x 24 shares: for each weekday (Monday first), how its calls spread over its UTC hours.

    `hourly` holds each series' hourly counts from `first_day` 00 UTC (as `state.load_hourly` reads them);
    a weekday never seen is spread evenly.
    """
    days = max((len(a) for a in hourly.values()), default=0) // 24
    totals = np.zeros((7, 24))
    for counts in hourly.values():
        for d in range(days):
            totals[(first_day + timedelta(days=d)).weekday()] += counts[d * 24 : d * 24 + 24]
    sums = totals.sum(axis=1, keepdims=True)
    flat = np.full((7, 24), 1 / 24)
    return np.where(sums > 0, totals / np.where(sums > 0, sums, 1), flat)


def forecast_series(
    daily: Mapping[str, Mapping[date, int]], first: date, last: date
) -> dict[str, list[float]]:
    """Each series' point forecast for the `HORIZON` days after `last`."""
    out = {}
    for series, counts in daily.items():
        if not counts:
            continue
        start = max(first, min(counts))
        out[series] = forecast(dense_daily(dict(counts), start, last), last).point
    return out


def plan_week(
    series_forecast: Mapping[str, list[float]],
    profile: np.ndarray,
    first_day: date,
    routing: RoutingTable,
    targets: CallTargets,
) -> WeekPlan:
    zone = routing.zone()
    hours = HORIZON * 24
    # The plan covers the city's 7 days from first_day's local midnight; counts are kept by UTC hour.
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=zone).astimezone(UTC)
    utc_hours = [start + timedelta(hours=h) for h in range(hours)]
    city = np.zeros(hours)
    by_department: dict[str, np.ndarray] = {}
    for series, days in series_forecast.items():
        arrivals = _hourly(days, profile, first_day, utc_hours)
        city += arrivals
        category, district = split_series(series)
        department, _ = routing.route(category, district)
        by_department[department] = by_department.get(department, np.zeros(hours)) + arrivals
    hour_plans = [
        HourPlan(
            start=utc_hours[h].astimezone(zone),
            calls=float(city[h]),
            erlang_c=agents_needed(
                float(city[h]),
                targets.handle_seconds,
                target_level=targets.level,
                target_seconds=targets.within_seconds,
            ),
            erlang_a=agents_needed(
                float(city[h]),
                targets.handle_seconds,
                target_level=targets.level,
                target_seconds=targets.within_seconds,
                patience_seconds=targets.patience_seconds,
            ),
        )
        for h in range(hours)
    ]
    departments = [
        day
        for dept_id in sorted(by_department)
        for day in _department_days(dept_id, by_department[dept_id], start, routing, zone)
    ]
    return WeekPlan(first_day, hour_plans, departments, {s: list(v) for s, v in series_forecast.items()})


def _hourly(days: list[float], profile: np.ndarray, first_day: date, utc_hours: list[datetime]) -> np.ndarray:
    """Each hour's share of its UTC day's forecast (the hours before first_day's UTC midnight, in a city
    east of UTC, take the first day's forecast)."""
    out = np.zeros(len(utc_hours))
    for h, at in enumerate(utc_hours):
        d = min(max((at.date() - first_day).days, 0), HORIZON - 1)
        out[h] = days[d] * profile[at.weekday(), at.hour]
    return out


def _department_days(
    dept_id: str, arrivals: np.ndarray, start: datetime, routing: RoutingTable, zone: ZoneInfo
) -> list[DepartmentDay]:
    by_day: dict[date, float] = {}
    for h, n in enumerate(arrivals):
        local = (start + timedelta(hours=h)).astimezone(zone).date()
        by_day[local] = by_day.get(local, 0.0) + float(n)
    department = routing.department(dept_id)
    out = []
    backlog = 0.0
    for day in sorted(by_day):
        if department is None:  # routed to an id the table lacks: nothing to plan against
            capacity = 0.0
        else:
            opens = datetime(day.year, day.month, day.day, tzinfo=zone)
            worked = department.hours.open_hours(opens, opens + timedelta(days=1))
            capacity = department.hourly_rate() * worked
        backlog = max(0.0, backlog + by_day[day] - capacity)
        out.append(DepartmentDay(dept_id, day, by_day[day], capacity, backlog))
    return out
