"""Surge detection on synthetic traffic with injected surges, against a fixed-threshold detector; and the
7-day forecast backtest against seasonal naive (synthetic series, and the Teddy Cup data when present).

    .venv/bin/python bench/insight_surges.py [--series 48] [--days 70] [--surges 60] [--seed 1]

Background traffic: per-series volumes drawn log-normally, hour-of-day and weekday seasonality, and a
day-to-day Gamma multiplier (overdispersed counts), from `services.insight.synthetic`. Each surge adds
`k` (2, 4 or 8) times the series' usual volume, and at least 6 tickets, over 1-6 hours at a random time
in the evaluated days; recall is reported by the realised ratio extra / usual.
- recall: surges whose series alerted from their start to 24 h after their end;
- delay: hours from the surge's first hour to the alert's hour (0 = within the first hour);
- false alarms/day: alerts matching no surge.
The baseline is one fixed hourly threshold for every series, set as low as it can go while firing no
more than once a day on the warm-up weeks (the same false-alarm budget as the detector's), with the same
24 h episode cooldown.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import date

import numpy as np

from services.insight.cli import HOTSPOT_DATA, dataset_path, read_messages, steady_span
from services.insight.forecast import backtest, dense_daily
from services.insight.surge import SurgeConfig, replay
from services.insight.synthetic import InjectedSurge, background, inject

WARM_DAYS = 28
SIZES = (2.0, 4.0, 8.0)  # extra tickets as a multiple of the series' usual volume over the surge's hours
MIN_EXTRA = 6  # and never fewer than this: a "surge" of two tickets is not one an operator would act on


def make_surges(
    counts: dict[str, np.ndarray], n: int, days: int, rng: np.random.Generator
) -> list[InjectedSurge]:
    names = sorted(counts)
    taken: dict[str, list[int]] = {}
    out = []
    while len(out) < n:
        series = names[int(rng.integers(len(names)))]
        start = int(rng.integers(WARM_DAYS * 24, days * 24 - 30))
        if any(abs(start - s) < 72 for s in taken.get(series, [])):
            continue
        hours = int(rng.integers(1, 7))
        k = float(rng.choice(SIZES))
        usual = counts[series][: WARM_DAYS * 24].mean() * hours
        extra = max(MIN_EXTRA, round(k * usual))
        taken.setdefault(series, []).append(start)
        out.append(InjectedSurge(series, start, hours, extra))
    return out


def fixed_threshold_alerts(
    counts: dict[str, np.ndarray], threshold: int, from_hour: int, cooldown: int
) -> list[tuple[str, int]]:
    alerts = []
    for series, arr in counts.items():
        last = -(10**9)
        for h in range(from_hour, len(arr)):
            if arr[h] >= threshold:
                if h - last > cooldown:
                    alerts.append((series, h))
                last = h
    return alerts


def calibrate_threshold(counts: dict[str, np.ndarray], cooldown: int) -> int:
    for threshold in range(1, 1000):
        warm = {s: a[: WARM_DAYS * 24] for s, a in counts.items()}
        n = len(fixed_threshold_alerts(warm, threshold, 0, cooldown))
        if n <= WARM_DAYS:
            return threshold
    return 1000


def score(alerts: list[tuple[str, int]], surges: list[InjectedSurge], eval_days: int) -> dict[str, object]:
    matched: dict[int, int] = {}
    false = 0
    for series, hour in alerts:
        hit = None
        for i, s in enumerate(surges):
            if s.series == series and s.start_hour <= hour <= s.start_hour + s.hours + 24:
                hit = i
                break
        if hit is None:
            false += 1
        elif hit not in matched or hour < matched[hit]:
            matched[hit] = hour
    delays = [matched[i] - surges[i].start_hour for i in matched]
    by_k: Counter[str] = Counter()
    found_k: Counter[str] = Counter()
    for i, s in enumerate(surges):
        by_k[_size_class(s)] += 1
        found_k[_size_class(s)] += i in matched
    return {
        "recall": len(matched) / len(surges),
        "by_size": {k: f"{found_k[k]}/{by_k[k]}" for k in sorted(by_k)},
        "delay_median_h": float(np.median(delays)) if delays else float("nan"),
        "delay_p90_h": float(np.percentile(delays, 90)) if delays else float("nan"),
        "false_per_day": false / eval_days,
    }


_SIZES: dict[int, str] = {}


def _size_class(s: InjectedSurge) -> str:
    return _SIZES.get(id(s), "?")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=48)
    parser.add_argument("--days", type=int, default=70)
    parser.add_argument("--surges", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = SurgeConfig()
    rng = np.random.default_rng(args.seed)
    eval_days = args.days - WARM_DAYS

    clean = background(args.series, args.days, seed=args.seed)
    surges = make_surges(clean, args.surges, args.days, rng)
    for s in surges:
        usual = clean[s.series][: WARM_DAYS * 24].mean() * s.hours
        _SIZES[id(s)] = _bucket(s.extra / max(usual, 1e-9))
    traffic = inject(clean, surges, seed=args.seed + 1)
    per_day = sum(a.sum() for a in clean.values()) / args.days
    print(
        f"traffic: {args.series} series, {args.days} days ({WARM_DAYS} warm-up), {per_day:.0f} tickets/day, "
        f"{len(surges)} injected surges of 1-6 h"
    )

    started = time.perf_counter()
    quiet = replay(clean, 0, config, WARM_DAYS)
    found = replay(traffic, 0, config, WARM_DAYS)
    detector_s = time.perf_counter() - started
    ours = score([(s.episode.series, s.episode.start_hour) for s in found], surges, eval_days)

    threshold = calibrate_threshold(traffic, config.cooldown_hours)
    naive = score(
        fixed_threshold_alerts(traffic, threshold, WARM_DAYS * 24, config.cooldown_hours), surges, eval_days
    )
    naive_quiet = len(fixed_threshold_alerts(clean, threshold, WARM_DAYS * 24, config.cooldown_hours))

    print(f"\n{'detector':<34}{'recall':>8}{'delay p50/p90 h':>17}{'false/day':>11}  recall by surge size")
    print(
        f"{'seasonal NB, Bonferroni (ours)':<34}{ours['recall']:>8.0%}"
        f"{ours['delay_median_h']:>9.0f}/{ours['delay_p90_h']:<7.0f}{ours['false_per_day']:>11.2f}  "
        f"{ours['by_size']}"
    )
    print(
        f"{f'fixed threshold >= {threshold}/h':<34}{naive['recall']:>8.0%}"
        f"{naive['delay_median_h']:>9.0f}/{naive['delay_p90_h']:<7.0f}{naive['false_per_day']:>11.2f}  "
        f"{naive['by_size']}"
    )
    print(
        f"pure background (no surges), alerts/day: ours {len(quiet) / eval_days:.2f}, "
        f"fixed threshold {naive_quiet / eval_days:.2f}; bound {config.false_alarms_per_day}/day"
    )
    print(f"detector time: {detector_s:.1f}s for {2 * args.series * eval_days * 24:,} series-hours")

    print("\nforecast backtest, 8 weekly origins x 7 days (MAE per day; WAPE)")
    synthetic_daily = {s: a.reshape(-1, 24).sum(axis=1).astype(float) for s, a in clean.items()}
    rows = [bt for y in synthetic_daily.values() if (bt := backtest(y)) is not None]
    _forecast_line("synthetic series (mean over series)", rows)
    total = sum(synthetic_daily.values())
    _forecast_line("synthetic city total", [bt for bt in [backtest(total)] if bt is not None])
    dataset = dataset_path(HOTSPOT_DATA)
    if dataset.is_file():
        messages = read_messages(dataset)
        days: Counter[date] = Counter(m.created_at.date() for m in messages)
        first, last = steady_span(days)
        y = np.array(dense_daily(days, first, last))
        _forecast_line(f"Teddy Cup daily messages {first}..{last}", [bt for bt in [backtest(y)] if bt])
    else:
        print(f"(Teddy Cup data not found at {dataset}: skipped)")


def _bucket(ratio: float) -> str:
    return "x2" if ratio < 3 else "x4" if ratio < 6 else "x8+"


def _forecast_line(name: str, rows: list) -> None:  # type: ignore[type-arg]
    if not rows:
        return
    m_mae = np.mean([b.model_mae for b in rows])
    n_mae = np.mean([b.naive_mae for b in rows])
    m_w = np.mean([b.model_wape for b in rows])
    n_w = np.mean([b.naive_wape for b in rows])
    print(
        f"  {name:<52} Holt-Winters {m_mae:6.2f} ({m_w:.1%})   seasonal naive {n_mae:6.2f} ({n_w:.1%})"
        f"   MAE ratio {m_mae / n_mae:.2f}"
    )


if __name__ == "__main__":
    main()
