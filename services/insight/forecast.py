"""Next-7-day ticket volumes for staffing: Holt-Winters (additive, weekly season) against seasonal naive.

Both models are backtested on the same rolling origins (the last `origins` weeks, 7 days ahead from each),
and the interval of the final forecast comes from the model's own backtest errors at each horizon (their
empirical 10th and 90th percentiles), so it is as wide as the model has actually been wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import product

import numpy as np

SEASON = 7
HORIZON = 7
_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5)
_BETAS = (0.0, 0.02, 0.05)
_GAMMAS = (0.05, 0.1, 0.2, 0.3)


def seasonal_naive(y: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """The same weekday of the last week."""
    return np.array([y[len(y) - SEASON + (i % SEASON)] for i in range(horizon)], dtype=float)


def _holt_winters(
    y: np.ndarray, alpha: float, beta: float, gamma: float, horizon: int
) -> tuple[np.ndarray, float]:
    """(forecast, sum of squared one-step errors) of additive Holt-Winters with a damped trend."""
    phi = 0.9
    level = float(y[:SEASON].mean())
    trend = float(y[SEASON : 2 * SEASON].mean() - y[:SEASON].mean()) / SEASON
    season = list(y[:SEASON] - level)
    sse = 0.0
    for t in range(SEASON, len(y)):
        s = season[t - SEASON]
        err = y[t] - (level + phi * trend + s)
        sse += err * err
        new_level = alpha * (y[t] - s) + (1 - alpha) * (level + phi * trend)
        trend = beta * (new_level - level) + (1 - beta) * phi * trend
        season.append(gamma * (y[t] - new_level) + (1 - gamma) * s)
        level = new_level
    n = len(y)
    out = []
    damp = 0.0
    for i in range(1, horizon + 1):
        damp += phi**i
        out.append(level + damp * trend + season[n - SEASON + (i - 1) % SEASON])
    return np.maximum(np.array(out), 0.0), sse


def holt_winters(y: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """Holt-Winters with its smoothing parameters chosen by one-step error on `y` (a small grid)."""
    if len(y) < 2 * SEASON:
        return seasonal_naive(y, horizon) if len(y) >= SEASON else np.full(horizon, float(np.mean(y)))
    best: tuple[float, np.ndarray] | None = None
    for a, b, g in product(_ALPHAS, _BETAS, _GAMMAS):
        forecast, sse = _holt_winters(y, a, b, g, horizon)
        if best is None or sse < best[0]:
            best = (sse, forecast)
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class Backtest:
    origins: int
    model_mae: float
    naive_mae: float
    model_wape: float  # sum |error| / sum actual: defined with zero days, unlike MAPE
    naive_wape: float
    errors: np.ndarray  # origins x horizon, actual - model forecast

    @property
    def skill(self) -> float:
        """1 - model MAE / seasonal-naive MAE: above 0 means the model beats the baseline."""
        return 1.0 - self.model_mae / self.naive_mae if self.naive_mae > 0 else 0.0


def backtest(y: np.ndarray, origins: int = 8, horizon: int = HORIZON) -> Backtest | None:
    """Rolling-origin backtest over the last `origins` weeks; None when the series is too short."""
    origins = min(origins, (len(y) - 3 * SEASON) // horizon)
    if origins < 1:
        return None
    model_err, naive_err, actuals = [], [], []
    for k in range(origins, 0, -1):
        cut = len(y) - k * horizon
        train, actual = y[:cut], y[cut : cut + horizon]
        model_err.append(actual - holt_winters(train, horizon))
        naive_err.append(actual - seasonal_naive(train, horizon))
        actuals.append(actual)
    me, ne, act = np.array(model_err), np.array(naive_err), np.array(actuals)
    total = float(act.sum()) or 1.0
    return Backtest(
        origins=origins,
        model_mae=float(np.abs(me).mean()),
        naive_mae=float(np.abs(ne).mean()),
        model_wape=float(np.abs(me).sum() / total),
        naive_wape=float(np.abs(ne).sum() / total),
        errors=me,
    )


@dataclass(frozen=True)
class Forecast:
    days: list[date]
    point: list[float]
    lower: list[float]  # 10th percentile
    upper: list[float]  # 90th percentile
    backtest: Backtest | None

    def as_json(self) -> dict[str, object]:
        bt = self.backtest
        return {
            "days": [d.isoformat() for d in self.days],
            "point": [round(v, 2) for v in self.point],
            "lower": [round(v, 2) for v in self.lower],
            "upper": [round(v, 2) for v in self.upper],
            "backtest": None
            if bt is None
            else {
                "origins": bt.origins,
                "model_mae": round(bt.model_mae, 3),
                "naive_mae": round(bt.naive_mae, 3),
                "model_wape": round(bt.model_wape, 4),
                "naive_wape": round(bt.naive_wape, 4),
            },
        }


def forecast(daily: Sequence[float], last_day: date, horizon: int = HORIZON) -> Forecast:
    """Forecast the `horizon` days after `last_day`, the date of `daily[-1]`."""
    y = np.asarray(daily, dtype=float)
    bt = backtest(y, horizon=horizon)
    point = holt_winters(y, horizon) if len(y) else np.zeros(horizon)
    if bt is not None and bt.origins >= 2:
        lo, hi = np.percentile(bt.errors, [10, 90], axis=0)
    else:  # too short to have measured errors: a Poisson-width band
        lo, hi = -1.28 * np.sqrt(np.maximum(point, 1.0)), 1.28 * np.sqrt(np.maximum(point, 1.0))
    return Forecast(
        days=[last_day + timedelta(days=i) for i in range(1, horizon + 1)],
        point=[float(v) for v in point],
        lower=[float(v) for v in np.maximum(point + lo, 0.0)],
        upper=[float(v) for v in np.maximum(point + hi, 0.0)],
        backtest=bt,
    )


def dense_daily(counts: dict[date, int], first: date, last: date) -> list[float]:
    """Daily counts from `first` to `last`, zero on days without tickets."""
    return [float(counts.get(first + timedelta(days=i), 0)) for i in range((last - first).days + 1)]
