"""A city that waits for calls against one that acts on detection (未诉先办), on simulated cities.

    .venv/bin/python bench/proactive_city.py [--seed 1] [--days 120] [--problems 40]

Each city has districts x categories of background calls (weekly seasonality, a Gamma day factor so days are
overdispersed), most naming one of a few hundred places (estates, roads) drawn at random, so a place can
repeat by chance. Injected problems (a place and topic) generate calls every day, at 0.5-4 a day, until fixed.
Both cities see the same calls; they differ in when a problem gets fixed:
- **waiting** (the baseline): the cause is fixed once its calls have piled up to `--wait-calls` (the
  department looks into the cause after enough complaints, as 每月一题 does), then `--fix-days` of work;
- **acting**: the service's own code (`problems.observe` and `action_rule`, policy: `--act-repeats` calls of
  one place and topic in 7 days) opens a proactive work order, fixed `--fix-days` later; a work order on a
  place that had no injected problem is a false order. After each fix, `problems.evaluate` judges the effect
  on 14 days, with the same category's other places as the control.

Printed: calls the problems caused in each city and the share avoided, days from a problem's start to its
fix (median and 90th percentile), false proactive orders per week, and the verdicts on the fixed problems.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.insight.problems import (
    Problem,
    ProblemPolicy,
    Sighting,
    action_rule,
    evaluate,
    observe,
    place_problem_key,
    problem_id,
)

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
CATEGORIES = ("environment", "urban_construction", "transport", "utilities", "housing_property")
WEEKDAY = (1.1, 1.05, 1.0, 1.0, 0.95, 0.8, 0.7)


@dataclass
class City:
    """One city's handling of one injected problem."""

    calls: int = 0
    since_attempt: int = 0  # calls since the last fix attempt (the waiting city's trigger)
    attempts: int = 0
    working_until: int | None = None  # a fix attempt under way ends that day
    fixed: int | None = None


@dataclass
class Injected:
    key: str
    category: str
    district: str
    start: int  # day
    rate: float  # calls a day
    first_fix_fails: bool  # the first attempt (in either city) leaves the cause: the calls go on
    waiting: City
    acting: City

    def finish(self, city: City, day: int) -> bool:
        """End the attempt due today; True when it fixed the cause."""
        if city.working_until != day:
            return False
        city.working_until = None
        city.since_attempt = 0
        if city.attempts == 1 and self.first_fix_fails:
            return False
        city.fixed = day
        return True


@dataclass(frozen=True)
class Outcome:
    act_repeats: int
    caused_waiting: int
    caused_acting: int
    days_waiting: list[int]
    days_acting: list[int]
    orders: int
    false_orders: int
    weeks: float
    verdicts: dict[tuple[str, str], int]


def simulate(args: argparse.Namespace, act_repeats: int) -> Outcome:
    rng = random.Random(args.seed)
    # The hour of a call has its own stream: the acting city makes fewer calls, and the world's draws
    # (background, problems' calls) must not shift with them, so every policy sees the same city.
    hours = random.Random(args.seed + 1)
    districts = [f"D{i}" for i in range(args.districts)]
    places = [f"estate:P{i}" for i in range(args.places)]
    place_district = {p: rng.choice(districts) for p in places}
    # A few places are busy (big estates, main roads): by chance they repeat within a week.
    weights = [1 / (rank + 1) ** args.skew for rank in range(len(places))]
    injected: dict[str, Injected] = {}
    for _ in range(args.problems):
        place, category = rng.choice(places), rng.choice(CATEGORIES)
        key = place_problem_key(place, category)
        if key not in injected:
            injected[key] = Injected(
                key,
                category,
                place_district[place],
                start=rng.randrange(7, args.days - 30),
                rate=rng.uniform(0.5, 4.0),
                first_fix_fails=rng.random() < args.failed_fixes,
                waiting=City(),
                acting=City(),
            )
    by_id = {problem_id(k): p for k, p in injected.items()}
    policy = ProblemPolicy(detect_repeats=3, window_days=7, act_repeats=act_repeats, eval_days=14)
    problems: dict[str, Problem] = {}
    pending: dict[str, list[tuple[str, float]]] = {}
    resolving: dict[str, int] = {}  # problem id -> the day its work order is done
    orders = false_orders = 0
    to_evaluate: list[tuple[int, Problem, str]] = []  # (day, the problem as resolved, what really happened)
    category_daily: dict[str, dict[date, int]] = defaultdict(dict)
    verdicts: dict[tuple[str, str], int] = defaultdict(int)
    n = 0
    for day in range(args.days):
        at_day = START + timedelta(days=day)
        now = at_day + timedelta(hours=23)
        factor = rng.gammavariate(20, 1 / 20) * WEEKDAY[at_day.weekday()]
        sightings: list[Sighting] = []

        def call(
            key: str,
            category: str,
            district: str,
            at_day: datetime = at_day,
            sightings: list[Sighting] = sightings,
        ) -> None:
            nonlocal n
            n += 1
            at = at_day + timedelta(hours=hours.uniform(8, 20))
            sightings.append(Sighting(f"T{n}", at, key, category, district, key.split("|")[0], key))
            category_daily[category][at.date()] = category_daily[category].get(at.date(), 0) + 1

        for _ in range(_poisson(rng, args.background * factor)):
            [place] = rng.choices(places, weights)
            category = rng.choice(CATEGORIES)
            call(place_problem_key(place, category), category, place_district[place])
        for p in injected.values():
            if day < p.start:
                continue
            calls = _poisson(rng, p.rate * factor)
            if p.waiting.fixed is None:
                p.waiting.calls += calls
                p.waiting.since_attempt += calls
                p.finish(p.waiting, day)
                idle = p.waiting.working_until is None and p.waiting.fixed is None
                if idle and p.waiting.since_attempt >= args.wait_calls:  # enough calls: look at the cause
                    p.waiting.attempts += 1
                    p.waiting.working_until = day + args.fix_days
            if p.acting.fixed is None:
                p.acting.calls += calls
                for _ in range(calls):
                    call(p.key, p.category, p.district)
        for reopened in observe(problems, pending, sightings, policy).reopened:
            # The calls came back before the evaluation was due: that round had no effect.
            for i, (due, resolved, truth) in enumerate(to_evaluate):
                if resolved.problem_id == reopened.problem_id and due > day:
                    verdicts[truth, "no effect"] += 1
                    del to_evaluate[i]
                    break
        for pid, problem in problems.items():
            if resolving.get(pid) == day:
                del resolving[pid]
                problem.status, problem.resolved_at = "resolved", now
                inj = by_id.get(pid)
                if inj is not None:
                    fixed = inj.finish(inj.acting, day)
                    to_evaluate.append(
                        (day + 14, problem.model_copy(deep=True), "fixed" if fixed else "fix failed")
                    )
            elif action_rule(problem, policy, now):
                orders += 1
                problem.status, problem.actioned_at, problem.returned = "actioned", now, []
                resolving[pid] = day + args.fix_days
                inj = by_id.get(pid)
                if inj is None:
                    false_orders += 1
                else:
                    inj.acting.attempts += 1
                    inj.acting.working_until = day + args.fix_days
        for _, resolved, truth in [e for e in to_evaluate if e[0] == day]:
            current = problems[resolved.problem_id]
            resolved.daily = dict(current.daily)  # the calls since, as the live problem has them
            result = evaluate(
                resolved, now, policy, category_daily[resolved.category], category_daily[resolved.category]
            )
            if result is not None:
                verdicts[truth, result.verdict] += 1
    return Outcome(
        act_repeats,
        sum(p.waiting.calls for p in injected.values()),
        sum(p.acting.calls for p in injected.values()),
        [(p.waiting.fixed or args.days) - p.start for p in injected.values()],
        [(p.acting.fixed or args.days) - p.start for p in injected.values()],
        orders,
        false_orders,
        args.days / 7,
        verdicts,
    )


def report(args: argparse.Namespace) -> None:
    print(
        f"seed {args.seed}: {args.days} days, {args.problems} injected problems (0.5-4 calls a day each), "
        f"{args.background:.0f} background calls a day over {args.places} places (Zipf {args.skew:g}); "
        f"the waiting city looks at a cause after {args.wait_calls} calls; a fix takes {args.fix_days} days; "
        f"{args.failed_fixes:.0%} of first fixes fail (in both cities)"
    )
    print(
        f"{'policy (calls/7 days)':<22} {'calls: waiting':>15} {'acting':>7} {'avoided':>8} "
        f"{'days to fix: waiting':>21} {'acting':>7} {'orders':>7} {'false/week':>11}"
    )
    chosen = None
    for repeats in args.sweep:
        o = simulate(args, repeats)
        chosen = o if repeats == args.act_repeats else chosen
        print(
            f"{repeats:<22} {o.caused_waiting:>15} {o.caused_acting:>7} "
            f"{1 - o.caused_acting / o.caused_waiting:>8.0%} "
            f"{statistics.median(o.days_waiting):>10.1f} (p90 {_p90(o.days_waiting):>3.0f}) "
            f"{statistics.median(o.days_acting):>7.1f} {o.orders:>7} {o.false_orders / o.weeks:>11.2f}"
        )
    if chosen is None:
        chosen = simulate(args, args.act_repeats)
    print(f"\nthe effect evaluation (14 days after each work order, policy {chosen.act_repeats}):")
    for truth in ("fixed", "fix failed"):
        found = {v: n for (t, v), n in chosen.verdicts.items() if t == truth}
        print(f"  work orders that {truth}: " + ", ".join(f"{v} {n}" for v, n in sorted(found.items())))


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method for small means, a normal approximation past it (the background is ~hundreds a day).
    if mean > 50:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _p90(values: list[int]) -> float:
    return float(sorted(values)[int(0.9 * (len(values) - 1))])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--districts", type=int, default=8)
    parser.add_argument("--places", type=int, default=3000)
    parser.add_argument("--background", type=float, default=300.0, help="background calls a day")
    parser.add_argument("--act-repeats", type=int, default=5, help="the policy: calls of one place in 7 days")
    parser.add_argument("--sweep", type=int, nargs="*", default=[3, 5, 8], help="policies to compare")
    parser.add_argument("--wait-calls", type=int, default=20, help="calls before the waiting city fixes")
    parser.add_argument("--fix-days", type=int, default=5, help="days of work once the cause is looked at")
    parser.add_argument(
        "--failed-fixes", type=float, default=0.2, help="share of work orders that fix nothing"
    )
    parser.add_argument("--skew", type=float, default=0.5, help="Zipf exponent of the places' busyness")
    report(parser.parse_args())


if __name__ == "__main__":
    main()
