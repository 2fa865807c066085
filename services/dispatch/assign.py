"""Assignment: among the departments that can fix a ticket, the one most likely to fix it in time.

Pure functions over the routing table and a snapshot of supply (open tickets ahead in each department's
queue, learned acceptance counts). The service reads the snapshot from Redis; the simulation benchmark
(`bench/dispatch_sim.py`) feeds its own, and both call `assign`.

For each candidate department:
- it signs for the ticket when it is next open: after the dispatch deadline, the ticket breaches;
- it resolves the ticket after the open tickets due before it (earliest deadline first), at its hourly
  rate (daily capacity over its working hours), working only while open. How many it gets through by the
  feedback deadline is taken as Poisson with that mean, which gives the chance of missing it;
- it accepts with a Beta-smoothed rate learned per department x category x district; a rejection costs
  `policy.rejection_hours` and leaves the ticket to the best of the other candidates, then later;
- so, the chance of a breach `risk`, and a cost in hours:
  `eta + (1 - p) * rejection_hours - p * priority * priority_hours`.
The choice is the lowest `risk * breach_hours + cost`: keep the deadline first, then prefer the rule's
owner, then spread the load.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from services.dispatch.routing import Department, RoutingTable

Via = Literal["rule", "catalogue", "fallback", "coordinator"]
NO_DISTRICT = "-"


@dataclass(frozen=True)
class Counts:
    accepts: int = 0
    rejects: int = 0


class Supply(Protocol):
    def ahead(self, department: str, due: datetime) -> int:
        """Open tickets in the department's queue due no later than `due`."""
        ...

    def acceptance(self, department: str, category: str, district: str | None) -> Counts: ...

    def added(self, department: str, due: datetime) -> None:
        """A ticket due at `due` was just assigned to the department (later estimates count it)."""
        ...


@dataclass(frozen=True)
class Demand:
    category: str
    district: str | None
    dispatch_due: datetime
    feedback_due: datetime


@dataclass(frozen=True)
class Candidate:
    department: str
    priority: int
    via: Via


@dataclass(frozen=True)
class Estimate:
    candidate: Candidate
    ahead: int
    capacity: int
    open_now: bool
    accept_rate: float
    counts: Counts
    eta_hours: float
    risk: float
    cost: float


@dataclass(frozen=True)
class Assignment:
    department: str
    reason: str
    estimates: tuple[Estimate, ...]


def candidates(table: RoutingTable, category: str, district: str | None) -> list[Candidate]:
    """Departments that may take the ticket, by rules and catalogues (the fallback is `assign`'s)."""
    found: dict[str, Candidate] = {}
    for rule in table.rules_for(category, district):
        dept = table.department(rule.department)
        if dept is None or (rule.district is None and not dept.serves(district)):
            continue
        best = found.get(dept.id)
        if best is None or rule.priority > best.priority:
            found[dept.id] = Candidate(dept.id, rule.priority, "rule")
    for dept in table.departments:
        if category in dept.categories and dept.serves(district) and dept.id not in found:
            found[dept.id] = Candidate(dept.id, 0, "catalogue")
    return sorted(found.values(), key=lambda c: (-c.priority, c.department))


def assign(
    table: RoutingTable,
    demand: Demand,
    supply: Supply,
    now: datetime,
    *,
    exclude: Collection[str] = (),
) -> Assignment | None:
    """The best department not in `exclude`, with the reason; None when none is left."""
    pool = [c for c in candidates(table, demand.category, demand.district) if c.department not in exclude]
    owner = table.fallback_for(demand.district)
    if not pool and owner not in exclude:
        pool = [Candidate(owner, 0, "fallback")]
    if exclude and table.coordinator not in exclude and all(c.department != table.coordinator for c in pool):
        # A rejected ticket is a question of jurisdiction, which is the coordinator's job: it competes
        # with the departments left, and wins when they are too full or too slow to keep the deadline.
        pool.append(Candidate(table.coordinator, table.policy.coordinator_priority, "coordinator"))
    if not pool:
        return None
    known = []
    for c in pool:
        if (spec := table.department(c.department)) is not None:
            known.append((c, spec))
    if not known:
        return None
    later = now + timedelta(hours=table.policy.rejection_hours)
    fallback = table.department(table.fallback_for(demand.district))
    risks_later: dict[str, float] = {}

    def later_risk(dept: Department) -> float:
        if dept.id not in risks_later:
            risks_later[dept.id] = _direct_risk(table, dept, demand, supply, later)
        return risks_later[dept.id]

    def after_rejection(c: Candidate) -> float:
        """What a rejection leads to: the risk at the best other candidate (or the fallback), later."""
        others = [later_risk(dept) for o, dept in known if o.department != c.department]
        if fallback is not None and fallback.id != c.department:
            others.append(later_risk(fallback))
        return min(others, default=1.0)

    estimates = [_estimate(table, dept, c, demand, supply, now, after_rejection) for c, dept in known]
    estimates.sort(key=lambda e: (e.risk * table.policy.breach_hours + e.cost, e.candidate.department))
    return Assignment(estimates[0].candidate.department, _reason(estimates), tuple(estimates))


def _timing(
    table: RoutingTable, dept: Department, demand: Demand, supply: Supply, now: datetime
) -> tuple[int, float, float, float]:
    """(tickets ahead, hours until it signs, hours until it resolves, chance of missing a deadline)."""
    local = now.astimezone(table.zone())
    ahead = supply.ahead(dept.id, demand.feedback_due)
    signs_at = dept.hours.finish(local, 0.0)
    signs = (signs_at - local).total_seconds() / 3600
    eta = (dept.hours.finish(local, (ahead + 1) / dept.hourly_rate()) - local).total_seconds() / 3600
    return ahead, signs, eta, _miss(dept, demand, ahead, local, signs_at)


def _direct_risk(
    table: RoutingTable, dept: Department, demand: Demand, supply: Supply, now: datetime
) -> float:
    """`_timing`'s chance of missing a deadline, without the time to resolve that it does not need."""
    local = now.astimezone(table.zone())
    ahead = supply.ahead(dept.id, demand.feedback_due)
    return _miss(dept, demand, ahead, local, dept.hours.finish(local, 0.0))


def _miss(dept: Department, demand: Demand, ahead: int, local: datetime, signs_at: datetime) -> float:
    if signs_at > demand.dispatch_due:
        return 1.0
    working = dept.hours.open_hours(signs_at, demand.feedback_due.astimezone(local.tzinfo))
    return _poisson_cdf(ahead, dept.hourly_rate() * working)


def _estimate(
    table: RoutingTable,
    dept: Department,
    c: Candidate,
    demand: Demand,
    supply: Supply,
    now: datetime,
    after_rejection: Callable[[Candidate], float],
) -> Estimate:
    policy = table.policy
    ahead, signs, eta, miss = _timing(table, dept, demand, supply, now)
    counts = supply.acceptance(dept.id, demand.category, demand.district)
    rate = (counts.accepts + policy.prior_accepts) / (
        counts.accepts + counts.rejects + policy.prior_accepts + policy.prior_rejects
    )
    # Only a department that could keep the deadline needs the cost of a rejection worked out.
    risk = 1.0 if miss == 1.0 and signs > 0 else rate * miss + (1 - rate) * after_rejection(c)
    return Estimate(
        candidate=c,
        ahead=ahead,
        capacity=dept.capacity,
        open_now=signs == 0,
        accept_rate=rate,
        counts=counts,
        eta_hours=eta,
        risk=risk,
        # A preference is worth only as much as the chance the department takes the ticket.
        cost=eta + (1 - rate) * policy.rejection_hours - rate * c.priority * policy.priority_hours,
    )


def _poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean): the chance that at most k tickets get done, i.e. ours is late."""
    if mean <= 0:
        return 1.0
    if mean > 50:  # normal approximation with continuity correction; exact enough to rank departments
        return 0.5 * math.erfc(-(k + 0.5 - mean) / math.sqrt(2 * mean))
    if k > mean + 12 * math.sqrt(mean) + 12:
        return 1.0
    term = total = math.exp(-mean)
    for i in range(1, k + 1):
        term *= mean / i
        total += term
    return min(1.0, total)


def _reason(estimates: list[Estimate]) -> str:
    best = estimates[0]
    c = best.candidate
    parts = [
        f"{c.via} priority {c.priority}" if c.via == "rule" else c.via,
        f"{best.ahead} ahead of {best.capacity}/day",
        "open now" if best.open_now else "closed now",
        f"accepts {best.accept_rate:.2f} (learned {best.counts.accepts}/"
        f"{best.counts.accepts + best.counts.rejects})",
        f"eta {best.eta_hours:.1f}h",
        f"breach risk {best.risk:.2f}",
    ]
    text = f"{c.department}: " + ", ".join(parts)
    if len(estimates) > 1:
        other = estimates[1]
        text += f"; next {other.candidate.department} (eta {other.eta_hours:.1f}h, risk {other.risk:.2f})"
    return text
