"""Realistic synthetic ticket traffic with surges of known size and time, for tests and benchmarks.

Background: per-series daily volumes drawn log-normally (a few busy series, many quiet ones), a
hour-of-day shape (quiet nights, morning and afternoon peaks), quieter weekends, and a day-to-day Gamma
multiplier per series so that counts are overdispersed like real hotline traffic, not Poisson.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.insight.surge import hour_of_week

# Relative volume by local hour of day (a 12345 line: quiet 0-6 h, peaks at 9-11 h and 14-17 h).
HOUR_SHAPE = np.array(
    [0.15, 0.1, 0.08, 0.07, 0.08, 0.15, 0.35, 0.8, 1.5, 1.9, 2.0, 1.8, 1.3, 1.4, 1.8, 1.9, 1.8, 1.5, 1.1, 1.0,
     0.9, 0.7, 0.45, 0.25]
)  # fmt: skip
WEEKDAY_SHAPE = np.array([1.1, 1.05, 1.0, 1.0, 1.0, 0.75, 0.65])


@dataclass(frozen=True)
class InjectedSurge:
    series: str
    start_hour: int  # index into the arrays
    hours: int
    extra: int


def background(
    n_series: int,
    days: int,
    *,
    seed: int,
    start_hour: int = 0,
    median_per_day: float = 8.0,
    spread: float = 1.0,
    day_shape: float = 15.0,
) -> dict[str, np.ndarray]:
    """Hourly counts for `n_series` series over `days` days; hour i is absolute hour `start_hour + i`."""
    rng = np.random.default_rng(seed)
    n_hours = days * 24
    shape = np.array([_shape(start_hour + i) for i in range(n_hours)])
    shape /= shape.mean()
    out: dict[str, np.ndarray] = {}
    for k in range(n_series):
        per_day = median_per_day * float(np.exp(rng.normal(0.0, spread)))
        daily = rng.gamma(day_shape, 1.0 / day_shape, size=days)
        rate = per_day / 24 * shape * np.repeat(daily, 24)
        out[f"cat{k % 12}|D{k // 12}"] = rng.poisson(rate).astype(np.int64)
    return out


def _shape(hour: int) -> float:
    how = hour_of_week(hour)
    return float(HOUR_SHAPE[how % 24] * WEEKDAY_SHAPE[how // 24])


def inject(counts: dict[str, np.ndarray], surges: list[InjectedSurge], *, seed: int) -> dict[str, np.ndarray]:
    """A copy of `counts` with each surge's extra tickets spread at random over its hours."""
    rng = np.random.default_rng(seed)
    out = {s: a.copy() for s, a in counts.items()}
    for surge in surges:
        spread = rng.multinomial(surge.extra, np.full(surge.hours, 1.0 / surge.hours))
        out[surge.series][surge.start_hour : surge.start_hour + surge.hours] += spread
    return out
