"""The 三率 as Prometheus gauges, refreshed from Redis by a background loop (never per ticket).

Labels are bounded: a department, district or category (at most `max_units` of each, the busiest), a rate
(response, resolution, satisfaction), a kind (raw) and a window (today, this month); the standardised
ratio (observed / expected for the case mix) is its own gauge, since it is not a rate. A unit
that has left the counters disappears from the next scrape, because every scrape is built from the last
snapshot rather than from gauges that keep old label sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from services.evaluation.rates import (
    DIMENSIONS,
    MEASURES,
    RATE_NAMES,
    Board,
    UnitReport,
    Window,
    board,
    current_buckets,
    load_tables,
)
from shared.store import keys

log = logging.getLogger("hotline.evaluation.gauges")

GAUGE_WINDOWS: tuple[Window, ...] = ("day", "month")


@dataclass
class _Snapshot:
    boards: dict[Window, Board] = field(default_factory=dict)
    surveys_due: int = 0
    surveys_open: int = 0
    supervision: int = 0


class RateGauges(Collector):
    def __init__(
        self,
        redis: Redis,
        tz: tzinfo,
        min_volume: int,
        max_units: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.tz = tz
        self.min_volume = min_volume
        self.max_units = max_units
        self.clock = clock
        self.snapshot = _Snapshot()

    async def refresh(self) -> None:
        buckets = current_buckets(datetime.fromtimestamp(self.clock(), UTC), self.tz)
        boards = {}
        for window in GAUGE_WINDOWS:
            table = (await load_tables(self.redis, window, [buckets[window]]))[buckets[window]]
            boards[window] = board(table, window, buckets[window], self.min_volume)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.surveys_due)
            pipe.zcard(keys.surveys_open)
            pipe.zcard(keys.supervision)
            due, open_, supervision = await pipe.execute()
        self.snapshot = _Snapshot(boards, int(due), int(open_), int(supervision))

    async def run(self, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("rate gauges not refreshed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    def describe(self) -> Iterable[Metric]:
        return self._families(_Snapshot())

    def collect(self) -> Iterable[Metric]:
        return self._families(self.snapshot)

    def _families(self, snap: _Snapshot) -> list[Metric]:
        city = GaugeMetricFamily(
            "hotline_evaluation_rate",
            "The city's 三率 (0-1) in the current window",
            labels=["rate", "window"],
        )
        families: list[Metric] = [city]
        for window, b in snap.boards.items():
            for rate in RATE_NAMES:
                if (value := b.city.rates[rate].raw) is not None:
                    city.add_metric([rate, window], value)
        for dimension in DIMENSIONS:
            rates = GaugeMetricFamily(
                f"hotline_evaluation_{dimension}_rate",
                f"三率 (0-1) per {dimension}",
                labels=[dimension, "rate", "kind", "window"],
            )
            ratios = GaugeMetricFamily(
                f"hotline_evaluation_{dimension}_standardised_ratio",
                f"Observed / expected for each {dimension}'s case mix (1 = as expected; not a rate)",
                labels=[dimension, "rate", "window"],
            )
            ranks = GaugeMetricFamily(
                f"hotline_evaluation_{dimension}_rank",
                f"Rank of each {dimension} this month by standardised ratio (1 = best; minimum volume met)",
                labels=[dimension, "rate"],
            )
            cases = GaugeMetricFamily(
                f"hotline_evaluation_{dimension}_cases",
                f"Counts behind the rates per {dimension} this month",
                labels=[dimension, "measure"],
            )
            for window, b in snap.boards.items():
                for unit in self._busiest(b.units[dimension]):
                    for rate in RATE_NAMES:
                        figure = unit.rates[rate]
                        if figure.raw is not None:
                            rates.add_metric([unit.unit, rate, "raw", window], figure.raw)
                        if figure.ratio is not None:
                            ratios.add_metric([unit.unit, rate, window], figure.ratio)
                        if window == "month" and figure.rank is not None:
                            ranks.add_metric([unit.unit, rate], figure.rank)
                    if window == "month":
                        for measure in MEASURES:
                            cases.add_metric([unit.unit, measure], unit.counts[measure])
            families += [rates, ratios, ranks, cases]
        pending = GaugeMetricFamily(
            "hotline_evaluation_surveys_pending",
            "Surveys waiting to be sent (due) or answered (open)",
            labels=["queue"],
        )
        if snap.boards:
            pending.add_metric(["due"], snap.surveys_due)
            pending.add_metric(["open"], snap.surveys_open)
        supervision = GaugeMetricFamily(
            "hotline_evaluation_supervision_tickets",
            "Tickets flagged for supervision (督办) after repeated reopening",
        )
        if snap.boards:
            supervision.add_metric([], snap.supervision)
        return [*families, pending, supervision]

    def _busiest(self, units: list[UnitReport]) -> list[UnitReport]:
        by_volume = sorted(units, key=lambda u: (-(u.counts["dispatched"] + u.counts["evaluated"]), u.unit))
        return by_volume[: self.max_units]
