"""Surge detection: each category x district series against its own seasonal baseline.

The model, per series s and UTC hour h:

    expected count in a window W ending at h  =  level[s] * sum over h' in W of profile[hour_of_week(h')]

- `profile` is the hour-of-week shape (168 multipliers, mean 1), pooled over all series so that a small
  series borrows the shape of the whole city, and shrunk towards flat where the history is thin.
- `level[s]` is the series' rate per profile-hour: the posterior mean of a Gamma(prior) rate, so a series
  with no history starts from a weak prior rather than from zero.
- The count is negative binomial (NB2, variance mu + mu^2/size): `1/size` adds the day-to-day
  overdispersion measured on the history (pooled method of moments) to the uncertainty of the level itself
  (the Gamma posterior's shape), so a series seen for only a few days needs a bigger jump to alert.

A window *breaks out* when P(X >= count) is below `alpha_per_test` and the count reaches `min_count`.

The false-alarm bound (Bonferroni): a day holds `24 * len(windows) * n_series` tests (the count of a window
only grows within its hour, so testing at every arrival is the same test as testing at the hour's end).
With `alpha_per_test = false_alarms_per_day / that number`, the expected number of breaches on pure
background is at most `false_alarms_per_day` a day under the model, whatever the correlation between
windows. Alerts are fewer still: one per episode, and an episode lasts until `cooldown_hours` pass with
no breach. The bound is only as good as the model; `bench/insight_surges.py` measures the real rate on
overdispersed traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import nbinom

HOURS_PER_WEEK = 168
# 1970-01-01 (hour 0) was a Thursday; Monday 00:00 UTC is hour-of-week 0.
_EPOCH_WEEKDAY = 3


def hour_of_week(hour: int) -> int:
    """Hour-of-week (Monday 00 UTC = 0) of an hour index (hours since the Unix epoch)."""
    return ((hour // 24 + _EPOCH_WEEKDAY) % 7) * 24 + hour % 24


@dataclass(frozen=True)
class SurgeConfig:
    windows: tuple[int, ...] = (1, 6, 24)
    false_alarms_per_day: float = 1.0
    history_days: int = 28
    min_history_days: int = 7
    min_count: int = 4
    cooldown_hours: int = 24
    # Gamma prior on a series' rate: `prior_tickets` seen in `prior_hours` (half a ticket a day).
    prior_tickets: float = 0.5
    prior_hours: float = 24.0
    profile_shrinkage: float = 5.0
    max_size: float = 100.0
    min_size: float = 0.5


@dataclass(frozen=True)
class Baseline:
    profile: np.ndarray  # 168 multipliers, mean 1
    levels: Mapping[str, tuple[float, float]]  # series -> (posterior shape, posterior rate per profile-hour)
    size: float  # NB2 size of the day-to-day overdispersion
    days_of_history: int
    config: SurgeConfig

    @property
    def warm(self) -> bool:
        return self.days_of_history >= self.config.min_history_days

    @property
    def n_series(self) -> int:
        return max(1, len(self.levels))

    def alpha_per_test(self) -> float:
        c = self.config
        return c.false_alarms_per_day / (24 * len(c.windows) * self.n_series)

    def exposure(self, end_hour: int, window: int) -> float:
        return float(sum(self.profile[hour_of_week(h)] for h in range(end_hour - window + 1, end_hour + 1)))

    def expected(self, series: str, end_hour: int, window: int) -> tuple[float, float]:
        """(mean, NB size) of the series' count in the `window` hours ending at `end_hour`."""
        c = self.config
        shape, rate = self.levels.get(series, (c.prior_tickets, c.prior_hours))
        mean = shape / rate * self.exposure(end_hour, window)
        size = 1.0 / (1.0 / self.size + 1.0 / shape)
        return mean, size


def tail_probability(count: int, mean: float, size: float) -> float:
    """P(X >= count) for X ~ NB2(mean, size)."""
    if count <= 0:
        return 1.0
    return float(nbinom.sf(count - 1, size, size / (size + mean)))


def fit(
    history: Mapping[str, np.ndarray],
    start_hour: int,
    config: SurgeConfig,
    days_of_history: int | None = None,
) -> Baseline:
    """Fit the baseline on hourly counts: `history[s][i]` is series s's count in hour `start_hour + i`."""
    n_hours = len(next(iter(history.values()))) if history else 0
    how = np.array([hour_of_week(start_hour + i) for i in range(n_hours)], dtype=np.int64)
    total_by_how = np.zeros(HOURS_PER_WEEK)
    hours_by_how = np.bincount(how, minlength=HOURS_PER_WEEK).astype(float)
    matrix = np.vstack(list(history.values())).astype(float) if history else np.zeros((0, n_hours))
    if n_hours:
        np.add.at(total_by_how, how, matrix.sum(axis=0))
    mean_rate = total_by_how.sum() / max(1, n_hours)
    # Shrink each hour-of-week towards the overall rate by `profile_shrinkage` pseudo-tickets.
    k = config.profile_shrinkage
    observed = hours_by_how > 0
    profile = np.ones(HOURS_PER_WEEK)
    if mean_rate > 0:
        profile[observed] = (total_by_how[observed] + k) / (hours_by_how[observed] * mean_rate + k)
        profile /= profile.mean()

    exposure = float(profile[how].sum())
    levels = {
        s: (config.prior_tickets + float(row.sum()), config.prior_hours + exposure)
        for s, row in zip(history.keys(), matrix, strict=True)
    }
    size = _overdispersion(matrix, profile[how], levels, config)
    days = days_of_history if days_of_history is not None else n_hours // 24
    return Baseline(profile=profile, levels=levels, size=size, days_of_history=days, config=config)


def _overdispersion(
    matrix: np.ndarray, shape: np.ndarray, levels: Mapping[str, tuple[float, float]], config: SurgeConfig
) -> float:
    """NB2 size of daily counts by the pooled method of moments: 1/size = sum((y-mu)^2 - y) / sum(mu^2)."""
    n_days = matrix.shape[1] // 24
    if n_days < 2 or not len(matrix):
        return config.max_size
    days = matrix[:, : n_days * 24].reshape(len(matrix), n_days, 24).sum(axis=2)
    day_exposure = shape[: n_days * 24].reshape(n_days, 24).sum(axis=1)
    rates = np.array([a / b for a, b in levels.values()])
    mu = rates[:, None] * day_exposure[None, :]
    num = float(((days - mu) ** 2 - days).sum())
    den = float((mu**2).sum())
    if num <= 0 or den <= 0:
        return config.max_size
    return float(min(config.max_size, max(config.min_size, den / num)))


@dataclass(frozen=True)
class Breach:
    window: int
    count: int
    expected: float
    probability: float


def strongest_breach(
    baseline: Baseline, series: str, end_hour: int, counts: Mapping[int, int]
) -> Breach | None:
    """The most significant window (lowest tail probability) that breaks out at `end_hour`, if any."""
    c = baseline.config
    alpha = baseline.alpha_per_test()
    best: Breach | None = None
    for window in c.windows:
        count = sum(counts.get(h, 0) for h in range(end_hour - window + 1, end_hour + 1))
        if count < c.min_count:
            continue
        mean, size = baseline.expected(series, end_hour, window)
        if count <= mean:
            continue
        p = tail_probability(count, mean, size)
        if p < alpha and (best is None or p < best.probability):
            best = Breach(window=window, count=count, expected=mean, probability=p)
    return best


@dataclass(frozen=True)
class Episode:
    """A run of breaches of one series; it ends after `cooldown_hours` without one."""

    series: str
    start_hour: int
    last_hour: int
    peak_count: int
    expected: float
    probability: float

    def is_open(self, hour: int, cooldown_hours: int) -> bool:
        return hour - self.last_hour <= cooldown_hours


@dataclass(frozen=True)
class Surge:
    """A new episode: what an alert reports."""

    episode: Episode
    breach: Breach


@dataclass
class SurgeDetector:
    """Counts and episodes of the series it was given, updated ticket by ticket.

    The service loads the counts of the hours it needs and the open episodes from Redis, runs a batch
    through `observe`, and writes back the changed episodes with the alerts in one transaction; the
    benchmark keeps everything in memory. Both run exactly this logic.
    """

    baseline: Baseline
    counts: dict[str, dict[int, int]] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)

    def observe(self, series: str, hour: int, n: int = 1) -> tuple[Surge | None, Episode | None]:
        """Add `n` tickets; returns (a new episode's surge, the episode changed by this breach)."""
        hours = self.counts.setdefault(series, {})
        hours[hour] = hours.get(hour, 0) + n
        if not self.baseline.warm:
            return None, None
        breach = strongest_breach(self.baseline, series, hour, hours)
        if breach is None:
            return None, None
        cooldown = self.baseline.config.cooldown_hours
        current = self.episodes.get(series)
        if current is not None and current.is_open(hour, cooldown) and hour >= current.start_hour:
            updated = replace(
                current,
                last_hour=max(current.last_hour, hour),
                peak_count=max(current.peak_count, breach.count),
                probability=min(current.probability, breach.probability),
            )
            self.episodes[series] = updated
            return None, updated
        episode = Episode(
            series=series,
            start_hour=hour,
            last_hour=hour,
            peak_count=breach.count,
            expected=breach.expected,
            probability=breach.probability,
        )
        self.episodes[series] = episode
        return Surge(episode=episode, breach=breach), episode

    def open_episodes(self, hour: int) -> list[Episode]:
        cooldown = self.baseline.config.cooldown_hours
        return [e for e in self.episodes.values() if e.is_open(hour, cooldown)]


def replay(
    history: Mapping[str, np.ndarray], start_hour: int, config: SurgeConfig, from_day: int
) -> list[Surge]:
    """Run the detector over hourly counts as the service would, refitting the baseline once a day.

    The baseline of day d is fitted on days d - history_days .. d - 1 (never on the day under test), as the
    service does. Detection starts at day `from_day` (counted from `start_hour`).
    """
    series = list(history)
    n_days = len(history[series[0]]) // 24 if series else 0
    surges: list[Surge] = []
    episodes: dict[str, Episode] = {}
    for day in range(from_day, n_days):
        first = max(0, day - config.history_days)
        window = {s: history[s][first * 24 : day * 24] for s in series}
        baseline = fit(window, start_hour + first * 24, config, days_of_history=day - first)
        detector = SurgeDetector(baseline, episodes=episodes)
        for h in range(day * 24, day * 24 + 24):
            for s in series:
                # Earlier hours of the windows ending at h come from the same arrays.
                hours = detector.counts.setdefault(s, {})
                for back in range(max(config.windows) - 1, 0, -1):
                    if h - back >= 0 and (start_hour + h - back) not in hours:
                        hours[start_hour + h - back] = int(history[s][h - back])
                n = int(history[s][h])
                if n:
                    surge, _ = detector.observe(s, start_hour + h, n)
                    if surge is not None:
                        surges.append(surge)
        episodes = detector.episodes
    return surges
