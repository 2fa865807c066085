"""A simulated city replayed through dispatch's real assignment, against static routing, in one run.

The city is the routing table (`shared/data/routing.yaml` by default): its departments, capacities and
working hours. Demand:
- the category mix is that of the Teddy Cup 2020 C citizen messages (`classify_train.csv` labels,
  mapped through the taxonomy's aliases), plus fixed shares for the three categories that data lacks
  (utilities 6%, housing_property 7%, public_safety 2%);
- the arrival curve over the week (weekday x hour) is that of the same portal's messages
  (`hotspot_messages.csv` created_at);
- districts: central 35%, east 25%, west 25%, north 15%; urgency by category (see URGENCY);
- both read from $HOTLINE_DATASETS (default /work/shared/datasets); without it, a flat curve and an even mix.
Supply: each department triages a ticket once it is open (about 15 working minutes), accepting or
rejecting it, and works its accepted tickets earliest-deadline-first, one at a time, at its hourly rate
(daily capacity over its working hours), with exponential work times. Rejection odds are drawn once per
department x category x district from the seed: most are low (2-8%), one in six are jurisdiction traps
(40-70%), and a department outside its declared categories rejects 25%.

The two dispatchers see the same arrivals and the same random draws (per ticket and attempt):
- **assign** (ours): `services.dispatch.assign.assign` with the live queues and the acceptance counts it
  has learned so far; a rejection re-dispatches to the best department that has not rejected it; after
  `max_rejections` the coordinator.
- **static**: `RoutingTable.route` (the top rule for category x district); a rejection goes to the
  district's fallback, then the coordinator.
A ticket breaches if it is accepted after its dispatch deadline or resolved after its feedback deadline.

    .venv/bin/python bench/dispatch_sim.py [--days 35] [--utilisation 0.9] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import itertools
import os
import random
import statistics
import time
from bisect import bisect_right, insort
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from services.dispatch.assign import Counts, Demand, assign
from services.dispatch.routing import RoutingTable, load_routing
from services.dispatch.sla import deadlines
from shared.events import Urgency
from shared.settings import DATA_DIR
from shared.taxonomy import load_taxonomy

DISTRICTS = {"nangang": 0.35, "donghu": 0.25, "xishan": 0.25, "beiyuan": 0.15}
EXTRA_CATEGORIES = {"utilities": 0.06, "housing_property": 0.07, "public_safety": 0.02}
URGENCY: dict[str, dict[Urgency, float]] = {
    "utilities": {"emergency": 0.1, "utilities": 0.6, "general": 0.3},
    "public_safety": {"emergency": 0.5, "general": 0.5},
    "health": {"emergency": 0.05, "general": 0.85, "complex": 0.1},
}
DEFAULT_URGENCY: dict[Urgency, float] = {"emergency": 0.02, "general": 0.88, "complex": 0.1}
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
TRIAGE_HOURS = 0.25
Policy = Literal["assign", "static"]


# -- the city's demand ------------------------------------------------------------------------------


@dataclass
class Demandside:
    categories: dict[str, float]
    week_curve: list[float]  # 168 weights, Monday 00h first, in the city's local time
    source: str


def load_demand(datasets: Path, table: RoutingTable) -> Demandside:
    taxonomy = load_taxonomy(DATA_DIR / "taxonomy.yaml")
    labels = datasets / "teddycup2020c" / "classify_train.csv"
    messages = datasets / "teddycup2020c" / "hotspot_messages.csv"
    if not (labels.exists() and messages.exists()):
        codes = taxonomy.codes()
        return Demandside({c: 1 / len(codes) for c in codes}, [1.0] * 168, "built-in (datasets not found)")
    with labels.open(encoding="utf-8") as f:
        counts = Counter(taxonomy.resolve(row["label"]) for row in csv.DictReader(f))
    counts.pop(None, None)
    total = sum(counts.values())
    rest = 1 - sum(EXTRA_CATEGORIES.values())
    mix = {str(c): rest * n / total for c, n in counts.items()} | EXTRA_CATEGORIES
    curve = [0.0] * 168
    with messages.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row["created_at"])
            curve[at.weekday() * 24 + at.hour] += 1
    return Demandside(mix, [c + 1 for c in curve], f"{labels.name} ({total} labels), {messages.name}")


@dataclass(frozen=True)
class Arrival:
    n: int
    at: datetime
    category: str
    district: str
    urgency: Urgency
    draws: tuple[float, ...]  # one per attempt: the department accepts when draw >= its rejection odds
    work: tuple[float, ...]  # exponential(1) work sizes, one per attempt


def arrivals(
    demand: Demandside, per_day: float, days: int, zone: object, rng: random.Random
) -> list[Arrival]:
    """A non-homogeneous Poisson process following the week curve (thinning)."""
    peak = max(demand.week_curve)
    mean = sum(demand.week_curve) / 168
    rate_max = per_day / 24 * peak / mean  # arrivals per hour at the busiest hour of the week
    cats, cweights = zip(*demand.categories.items(), strict=True)
    dists, dweights = zip(*DISTRICTS.items(), strict=True)
    out: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate_max)
        if t >= days * 24:
            return out
        at = START + timedelta(hours=t)
        local = at.astimezone(zone)  # type: ignore[arg-type]
        if rng.random() * peak > demand.week_curve[local.weekday() * 24 + local.hour]:
            continue
        category = rng.choices(cats, cweights)[0]
        urgencies = URGENCY.get(category, DEFAULT_URGENCY)
        out.append(
            Arrival(
                n=len(out),
                at=at,
                category=category,
                district=rng.choices(dists, dweights)[0],
                urgency=rng.choices(list(urgencies), list(urgencies.values()))[0],
                draws=tuple(rng.random() for _ in range(8)),
                work=tuple(rng.expovariate(1.0) for _ in range(8)),
            )
        )


def rejection_odds(table: RoutingTable, rng: random.Random) -> dict[tuple[str, str, str], float]:
    odds = {}
    categories = sorted(
        {c for d in table.departments for c in d.categories} | {r.category for r in table.rules}
    )
    for dept in table.departments:
        own = set(dept.categories) | {r.category for r in table.rules if r.department == dept.id}
        for category in categories:
            for district in DISTRICTS:
                if dept.id == table.coordinator:
                    p = 0.0
                elif rng.random() < 1 / 6:
                    p = rng.uniform(0.4, 0.7)
                else:
                    p = rng.uniform(0.02, 0.08) if category in own else 0.25
                odds[(dept.id, category, district)] = p
    return odds


# -- the simulation -----------------------------------------------------------------------------------


@dataclass
class Ticket:
    a: Arrival
    dispatch_due: datetime
    feedback_due: datetime
    attempt: int = 0
    department: str = ""
    rejected: list[str] = field(default_factory=list)
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass
class Dept:
    id: str
    dues: list[float] = field(default_factory=list)  # feedback deadlines of its open tickets
    queue: list[tuple[float, int]] = field(default_factory=list)  # accepted, earliest deadline first
    busy: bool = False
    work_hours: float = 0.0


class City:
    """Supply for `assign`: the departments' queues and what has been learned about acceptance."""

    def __init__(self, table: RoutingTable, odds: dict[tuple[str, str, str], float], policy: Policy) -> None:
        self.table = table
        self.odds = odds
        self.policy = policy
        self.zone = table.zone()
        self.depts = {d.id: Dept(d.id) for d in table.departments}
        self.learned: dict[tuple[str, str, str | None], Counts] = defaultdict(Counts)
        self.events: list[tuple[datetime, int, str, int, str]] = []
        self.seq = itertools.count()
        self.tickets: dict[int, Ticket] = {}

    # Supply protocol
    def ahead(self, department: str, due: datetime) -> int:
        return bisect_right(self.depts[department].dues, due.timestamp())

    def acceptance(self, department: str, category: str, district: str | None) -> Counts:
        return self.learned[(department, category, district)]

    def added(self, department: str, due: datetime) -> None:
        """The simulation records assignments itself (`_send`)."""

    def _at(self, when: datetime, kind: str, n: int, dept: str) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, n, dept))

    def _choose(self, t: Ticket, now: datetime) -> str:
        a = t.a
        if len(t.rejected) >= self.table.max_rejections:
            return self.table.coordinator
        if self.policy == "static":
            if not t.rejected:
                return self.table.route(a.category, a.district)[0]
            owner = self.table.fallback_for(a.district)
            return owner if owner not in t.rejected else self.table.coordinator
        demand = Demand(a.category, a.district, t.dispatch_due, t.feedback_due)
        chosen = assign(self.table, demand, self, now, exclude=t.rejected)
        return chosen.department if chosen else self.table.coordinator

    def _send(self, t: Ticket, now: datetime) -> None:
        t.department = self._choose(t, now)
        t.attempt += 1
        insort(self.depts[t.department].dues, t.feedback_due.timestamp())
        hours = self.table.department(t.department).hours  # type: ignore[union-attr]
        self._at(
            _utc(hours.finish(now.astimezone(self.zone), TRIAGE_HOURS * t.a.work[-t.attempt])),
            "triage",
            t.a.n,
            t.department,
        )

    def _start(self, dept: Dept, now: datetime) -> None:
        if dept.busy or not dept.queue:
            return
        _, n = heapq.heappop(dept.queue)
        t = self.tickets[n]
        spec = self.table.department(dept.id)
        assert spec is not None
        work = t.a.work[min(t.attempt, len(t.a.work)) - 1] / spec.hourly_rate()
        dept.busy = True
        dept.work_hours += work
        self._at(_utc(spec.hours.finish(now.astimezone(self.zone), work)), "done", n, dept.id)

    def run(self, arrivals: list[Arrival]) -> list[Ticket]:
        for a in arrivals:
            self._at(a.at, "arrive", a.n, "")
        while self.events:
            now, _, kind, n, dept_id = heapq.heappop(self.events)
            if kind == "arrive":
                a = arrivals[n]
                d, f = deadlines(a.urgency, a.at)
                t = self.tickets[n] = Ticket(a, d, f)
                self._send(t, now)
                continue
            t = self.tickets[n]
            dept = self.depts[dept_id]
            if kind == "triage":
                key = (dept_id, t.a.category, t.a.district)
                c = self.learned[key]
                if t.a.draws[t.attempt - 1] < self.odds.get((dept_id, t.a.category, t.a.district), 0.25):
                    self.learned[key] = Counts(c.accepts, c.rejects + 1)
                    dept.dues.remove(t.feedback_due.timestamp())
                    t.rejected.append(dept_id)
                    self._send(t, now)
                else:
                    self.learned[key] = Counts(c.accepts + 1, c.rejects)
                    t.accepted_at = now
                    heapq.heappush(dept.queue, (t.feedback_due.timestamp(), n))
                    self._start(dept, now)
            else:  # done
                t.resolved_at = now
                dept.dues.remove(t.feedback_due.timestamp())
                dept.busy = False
                self._start(dept, now)
        return list(self.tickets.values())


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# -- figures ------------------------------------------------------------------------------------------


@dataclass
class Result:
    policy: Policy
    tickets: int
    breach_rate: float
    dispatch_breach: float
    feedback_breach: float
    emergency_breach: float
    rejections_per_ticket: float
    utilisation: dict[str, float]
    spread: float
    seconds: float


def measure(
    policy: Policy,
    table: RoutingTable,
    odds: dict[tuple[str, str, str], float],
    arr: list[Arrival],
    days: int,
    warmup: int,
) -> Result:
    started = time.perf_counter()
    city = City(table, odds, policy)
    tickets = city.run(arr)
    seconds = time.perf_counter() - started
    window_start = START + timedelta(days=warmup)
    window_end = START + timedelta(days=days)
    counted = [t for t in tickets if window_start <= t.a.at < window_end]

    def late(at: datetime | None, due: datetime) -> bool:
        return at is None or at > due

    d_breach = [late(t.accepted_at, t.dispatch_due) for t in counted]
    f_breach = [late(t.resolved_at, t.feedback_due) for t in counted]
    both = [x or y for x, y in zip(d_breach, f_breach, strict=True)]
    emergencies = [b for t, b in zip(counted, both, strict=True) if t.a.urgency == "emergency"]
    util = {  # work done (in tickets of mean size) over what the department can do in the arrival days
        d.id: city.depts[d.id].work_hours * d.hourly_rate() / (d.capacity * days) for d in table.departments
    }
    values = list(util.values())
    return Result(
        policy=policy,
        tickets=len(counted),
        breach_rate=sum(both) / len(counted),
        dispatch_breach=sum(d_breach) / len(counted),
        feedback_breach=sum(f_breach) / len(counted),
        emergency_breach=sum(emergencies) / max(1, len(emergencies)),
        rejections_per_ticket=sum(len(t.rejected) for t in counted) / len(counted),
        utilisation=util,
        spread=statistics.pstdev(values) / statistics.mean(values),
        seconds=seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--routing", type=Path, default=DATA_DIR / "routing.yaml")
    parser.add_argument(
        "--datasets", type=Path, default=Path(os.environ.get("HOTLINE_DATASETS", "/work/shared/datasets"))
    )
    parser.add_argument("--days", type=int, default=35, help="days of arrivals, warm-up included")
    parser.add_argument("--warmup", type=int, default=7)
    parser.add_argument(
        "--utilisation", type=float, default=0.9, help="arrivals / every department's capacity"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one simulated city per seed")
    args = parser.parse_args()

    table = load_routing(args.routing)
    demand = load_demand(args.datasets, table)
    capacity = sum(d.capacity for d in table.departments)
    per_day = args.utilisation * capacity
    print(f"city: {args.routing.name}, {len(table.departments)} departments, capacity {capacity}/day in all")
    print(f"demand: {demand.source}")
    print(
        f"{per_day:.0f} arrivals/day (utilisation {args.utilisation:.0%}) for {args.days} days, "
        f"measured after a {args.warmup}-day warm-up"
    )
    header = f"{'seed':>4} {'policy':8} {'breach':>7} {'dispatch':>9} {'feedback':>9} {'emerg.':>7}"
    print(f"\n{header} {'rej/t':>6} {'spread':>7} {'x real time':>12}")
    pairs: list[tuple[Result, Result]] = []
    for seed in args.seeds:
        rng = random.Random(seed)
        arr = arrivals(demand, per_day, args.days, table.zone(), rng)
        odds = rejection_odds(table, rng)
        simulated = (max(a.at for a in arr) - START).total_seconds()
        static, ours = (measure(p, table, odds, arr, args.days, args.warmup) for p in ("static", "assign"))
        for r in (static, ours):
            print(
                f"{seed:>4} {r.policy:8} {r.breach_rate:7.1%} {r.dispatch_breach:9.1%} "
                f"{r.feedback_breach:9.1%} {r.emergency_breach:7.1%} {r.rejections_per_ticket:6.2f} "
                f"{r.spread:7.2f} {simulated / r.seconds:11.0f}x"
            )
        pairs.append((static, ours))
    static, ours = pairs[0]
    print(f"\nutilisation by department, seed {args.seeds[0]} (static / assign):")
    for dept in static.utilisation:
        print(f"  {dept:22} {static.utilisation[dept]:5.0%} / {ours.utilisation[dept]:5.0%}")
    print()
    for (static, ours), seed in zip(pairs, args.seeds, strict=True):
        print(
            f"seed {seed}: assign {ours.breach_rate:.1%} vs static {static.breach_rate:.1%} breaches: "
            f"{1 - ours.breach_rate / static.breach_rate:.0%} fewer "
            f"(ratio {ours.breach_rate / static.breach_rate:.2f}); "
            f"load spread {ours.spread:.2f} vs {static.spread:.2f}"
        )
    mean_static = statistics.mean(s.breach_rate for s, _ in pairs)
    mean_ours = statistics.mean(o.breach_rate for _, o in pairs)
    print(
        f"mean over {len(pairs)} cities: assign {mean_ours:.1%} vs static {mean_static:.1%}: "
        f"{1 - mean_ours / mean_static:.0%} fewer breaches"
    )


if __name__ == "__main__":
    main()
