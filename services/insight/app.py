"""Wiring of insight: the consumer of tickets.classified (counts, surges) and the background refresh
(open hotspots, emerging issues, forecasts, 每月一题 candidates)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, date, datetime, timedelta

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field
from redis.asyncio import Redis

from services.dispatch.routing import load_routing
from services.insight import plan_data, state
from services.insight.chronic import from_clusters, rank
from services.insight.clusters import ClusterConfig, Clusterer, Message
from services.insight.forecast import dense_daily, forecast
from services.insight.handlers import Prepared, on_classified, series_of
from services.insight.lease import Lease
from services.insight.places import Place
from services.insight.plan import CallTargets
from services.insight.plan_data import week_plan
from services.insight.problem_pass import ProblemPass
from services.insight.problems import ProblemPolicy
from services.insight.surge import SurgeConfig, SurgeDetector
from shared import streams
from shared.bus import as_str, make_broker, redis_client
from shared.effects import Effects
from shared.events import HotspotAlert, TicketClassified
from shared.settings import CommonSettings
from shared.store import Ticket, TicketStore, keys
from shared.taxonomy import ConfigError
from shared.worker import Consumer, Worker, every

log = logging.getLogger("hotline.insight")


class InsightSettings(CommonSettings):
    port: int = 8084
    false_alarms_per_day: float = 1.0
    surge_cooldown_hours: int = 24
    surge_min_history_days: int = 7
    refresh_seconds: float = 30.0
    forecast_refresh_seconds: float = 3600.0
    emerging_days: int = 90
    emerging_top: int = 20
    # Problems (see services/insight/problems.py). The policy opens no work order by default: a city turns
    # it on (e.g. HOTLINE_PROACTIVE_REPEATS=5, HOTLINE_PROACTIVE_SURGE_RATIO=4) once it trusts it.
    problem_detect_repeats: int = Field(default=3, ge=2)
    problem_window_days: int = Field(default=7, ge=1)
    proactive_repeats: int = Field(default=0, ge=0)
    proactive_surge_ratio: float = Field(default=0.0, ge=0)
    proactive_surge_min: int = Field(default=6, ge=1)
    problem_eval_days: int = Field(default=14, ge=1)
    problem_reopen_repeats: int = Field(default=3, ge=1)

    def problem_policy(self) -> ProblemPolicy:
        return ProblemPolicy(
            detect_repeats=self.problem_detect_repeats,
            window_days=self.problem_window_days,
            act_repeats=self.proactive_repeats,
            act_surge_ratio=self.proactive_surge_ratio,
            act_surge_min=self.proactive_surge_min,
            eval_days=self.problem_eval_days,
            reopen_repeats=self.problem_reopen_repeats,
        )

    def surge_config(self) -> SurgeConfig:
        return SurgeConfig(
            false_alarms_per_day=self.false_alarms_per_day,
            cooldown_hours=self.surge_cooldown_hours,
            min_history_days=self.surge_min_history_days,
        )


class InsightMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "hotline_hotspots_open",
            "Surge episodes still open (a breach within the cooldown)",
            registry=registry,
        )
        self.alerts = Counter(
            "hotline_hotspot_alerts",
            "Hotspot alerts raised (one per episode)",
            ["category"],
            registry=registry,
        )
        self.emerging = Gauge(
            "hotline_emerging_issues",
            "Clusters of similar recent complaints (two or more)",
            registry=registry,
        )
        self.leader = Gauge(
            "hotline_insight_background_leader",
            "1 on the replica that holds the lease for the background pass (emerging issues, forecasts)",
            registry=registry,
        )
        self.problems_detected = Counter(
            "hotline_problems_detected",
            "Problems found (repeats of one place and topic, or a surge)",
            registry=registry,
        )
        self.problems_actioned = Counter(
            "hotline_problems_actioned",
            "Proactive work orders opened by the policy (supervisors' are counted by intake)",
            registry=registry,
        )
        self.problems_evaluated = Counter(
            "hotline_problems_evaluated",
            "Problems evaluated after their work order",
            ["verdict"],
            registry=registry,
        )
        for verdict in ("worked", "no effect", "too early"):  # exported at 0 before the first evaluation
            self.problems_evaluated.labels(verdict)
        self.problems_reopened = Counter(
            "hotline_problems_reopened",
            "Problems whose calls came back after the work order",
            registry=registry,
        )
        self.wape = Gauge(
            "hotline_forecast_backtest_wape",
            "Weighted absolute percentage error of the last 7-day forecast backtest (all tickets)",
            ["model"],
            registry=registry,
        )


class Insight:
    """The service's moving parts, kept together so tests can drive them directly."""

    def __init__(self, settings: InsightSettings, redis: Redis, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.redis = redis
        self.config = settings.surge_config()
        self.baselines = state.BaselineCache(redis, self.config)
        self.metrics = InsightMetrics(registry)
        self.store = TicketStore(redis)
        self.clusterer = Clusterer(ClusterConfig())
        # Three passes' worth: a holder that stalls through one pass keeps the lease.
        ttl = 3 * settings.refresh_seconds
        self.lease = Lease(redis, state.BACKGROUND_LEASE, settings.consumer_name, ttl)
        self._cursor = 0.0
        self._forecast_at: float | None = None
        self.problems = ProblemPass(
            redis, settings.problem_policy(), settings.stream_maxlen, settings.surge_cooldown_hours
        )

    async def handle(self, events: list[TicketClassified]) -> list[Effects]:
        series = {series_of(e) for e in events}
        hours = {state.hour_index(e.received_at) for e in events}
        days = {e.received_at.date() for e in events}
        baselines = {d: await self.baselines.for_day(d) for d in days}
        any_baseline = next(iter(baselines.values()))
        detector = SurgeDetector(
            any_baseline,
            counts=await state.load_counts(self.redis, series, hours, max(self.config.windows)),
            episodes=await state.load_episodes(self.redis, series),
        )
        prepared = Prepared(detector, baselines, await state.load_recent(self.redis, series))
        out = on_classified(events, prepared)
        for effects in out:
            for p in effects.publish:
                if isinstance(p.event, HotspotAlert):
                    self.metrics.alerts.labels(p.event.category).inc()
                    log.info(
                        "hotspot: %s/%s %d tickets in %sh (expected %.1f, p=%.2g)",
                        p.event.category,
                        p.event.district or "-",
                        p.event.count,
                        p.event.window_hours,
                        p.event.expected,
                        p.event.probability,
                    )
        return out

    # -- background ------------------------------------------------------------------------------

    async def refresh(self, now: datetime | None = None) -> None:
        """One pass of the background work: open hotspots, then, on the replica holding the lease,
        emerging issues and (hourly) forecasts and 每月一题 candidates."""
        now = now or datetime.now(UTC)
        hour = state.hour_index(now)
        episodes = await state.load_all_episodes(self.redis)
        self.metrics.open.set(sum(e.is_open(hour, self.config.cooldown_hours) for e in episodes))
        leading = await self.lease.hold()
        self.metrics.leader.set(leading)
        if not leading:  # another replica computes what follows for everyone
            self.metrics.emerging.set(0)
            return
        tickets, named = await self.update_emerging(now)
        due = (
            self._forecast_at is None
            or time.monotonic() - self._forecast_at >= self.settings.forecast_refresh_seconds
        )
        found = await self.problems.run(now, tickets, episodes, evaluate_now=due, named=named)
        self.metrics.problems_detected.inc(found.detected)
        self.metrics.problems_actioned.inc(found.actioned)
        self.metrics.problems_reopened.inc(found.reopened)
        for verdict, n in found.verdicts.items():
            self.metrics.problems_evaluated.labels(verdict).inc(n)
        if due:
            await self.update_forecasts(now.date())
            await self.update_chronic(now)
            await self.update_plan(now)
            self._forecast_at = time.monotonic()
        # The hourly work (forecasts, candidates, the plan) can outlast a short lease: renew it once done,
        # so it counts from the end of the pass and another replica does not start the same work.
        self.metrics.leader.set(await self.lease.hold())

    async def update_emerging(self, now: datetime) -> tuple[list[Ticket], dict[str, list[Place]]]:
        """Feed tickets received since the last pass to the clusterer; publish the hottest clusters.
        Returns the tickets read and the places each names, as the clusterer found them (the problems
        pass attaches the tickets by them)."""
        since = max(self._cursor, (now - timedelta(days=self.settings.emerging_days)).timestamp())
        ids = await self.redis.zrangebyscore(keys.by_created, since, now.timestamp())
        names = self.clusterer.unseen(as_str(i) for i in ids if isinstance(i, bytes | str))
        found = await self.store.get_many(
            names, fields=("text", "title", "received_at", "district", "address", "category", "channel")
        )
        tickets = [t for t in found if t is not None and t.text]
        messages = sorted(
            (
                Message(
                    id=t.ticket_id,
                    text=t.text or "",
                    title=t.title or "",
                    created_at=t.received_at or now,
                    location=t.district or t.address,
                )
                for t in tickets
            ),
            key=lambda m: m.created_at,
        )
        for i in range(0, len(messages), 256):
            await asyncio.to_thread(self.clusterer.add, messages[i : i + 256])
        # Overlap by a minute: a ticket stored a moment late is still seen (add() ignores repeats).
        self._cursor = max(self._cursor, now.timestamp() - 60)
        self.clusterer.prune(now - timedelta(days=self.settings.emerging_days))
        issues = self.clusterer.issues(now=now, top=self.settings.emerging_top)
        self.metrics.emerging.set(sum(len(c.members) >= 2 for c in self.clusterer.clusters.values()))
        await self.redis.set(state.EMERGING, json.dumps([i.as_json() for i in issues], ensure_ascii=False))
        return tickets, {m.id: m.places for m in messages}

    async def update_forecasts(self, today: date) -> None:
        last = today - timedelta(days=1)
        first = last - timedelta(days=7 * 16 - 1)
        per_series = await state.load_daily(self.redis, first, last)
        totals: dict[str, dict[date, int]] = {"all": {}}
        for series, counts in per_series.items():
            category, _ = state.split_series(series)
            for d, n in counts.items():
                totals["all"][d] = totals["all"].get(d, 0) + n
                totals.setdefault(category, {})[d] = totals.setdefault(category, {}).get(d, 0) + n
        result = {}
        for name, counts in totals.items():
            if not counts:
                continue
            start = max(first, min(counts))
            result[name] = forecast(dense_daily(counts, start, last), last).as_json()
        bt = result.get("all", {}).get("backtest")
        if isinstance(bt, dict):
            self.metrics.wape.labels("holt_winters").set(bt["model_wape"])
            self.metrics.wape.labels("seasonal_naive").set(bt["naive_wape"])
        await self.redis.set(state.FORECAST, json.dumps(result, ensure_ascii=False))

    async def update_plan(self, now: datetime) -> None:
        """The week's staffing and departments' load (as `hotline plan --week` with its defaults), for the
        supervisors' page."""
        try:
            routing = load_routing(self.settings.routing_path)
        except ConfigError as exc:  # dispatch reports the table's faults; the plan waits for a good one
            log.warning("insight: no plan: %s", exc)
            return
        plan, targets, source = await week_plan(self.redis, now.date(), routing, CallTargets(), measure=True)
        document = plan_data.as_json(plan, targets, source, now)
        await self.redis.set(plan_data.PLAN, json.dumps(document, ensure_ascii=False))

    async def update_chronic(self, now: datetime) -> None:
        """This month's 每月一题 candidates, from the clusters of the last `emerging_days`. Labelling and
        ranking them walks the window's clusters (seconds, hourly): in a thread, as the clustering, so the
        batches of tickets go on meanwhile (nothing else touches the clusterer during the pass)."""
        candidates = await asyncio.to_thread(
            lambda: rank(from_clusters(self.clusterer), now.year, now.month)[:20]
        )
        self.metrics.problems_detected.inc(await self.problems.adopt(candidates, now))
        await self.redis.set(
            keys.chronic(f"{now:%Y-%m}"), json.dumps([c.as_json() for c in candidates], ensure_ascii=False)
        )

    async def loop(self, stop: asyncio.Event) -> None:
        try:
            await every(stop, self.settings.refresh_seconds, self.refresh, log, "insight: background refresh")
        finally:
            with contextlib.suppress(Exception):  # Redis gone: the lease expires by itself
                await self.lease.release()


def build(settings: InsightSettings | None = None) -> tuple[Worker, AsgiFastStream]:
    settings = settings or InsightSettings()
    redis = redis_client(settings.redis_url)
    registry = CollectorRegistry()
    insight = Insight(settings, redis, registry)
    worker = Worker(
        service="insight",
        settings=settings,
        redis=redis,
        consumers=[Consumer(streams.CLASSIFIED, streams.INSIGHT, TicketClassified, insight.handle)],
        background=[insight.loop],
        registry=registry,
    )
    return worker, worker.asgi(make_broker(settings))
