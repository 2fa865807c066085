"""Assignment: among the departments that can fix a ticket, the one most likely to fix it in time.

Pure functions over the routing table and a snapshot of supply (open tickets ahead in each department's
queue, learned acceptance counts). The service reads the snapshot from Redis; the simulation benchmark
(`bench/dispatch_sim.py`) feeds its own, and both call `assign`.

For each candidate the estimate is, in hours:
- `eta`: when the department would resolve it, working through the open tickets due before it at its
  hourly rate (daily capacity spread over its working hours) and only while it is open;
- the chance it accepts, a Beta-smoothed rate learned per department x category x district, and the time a
  rejection costs (`policy.rejection_hours`);
- lateness: how far that would overrun the dispatch deadline (it signs for the ticket when it next opens)
  and the feedback deadline.
The choice is the least late; among the equally late (usually: all on time), the lowest
`eta + (1 - p) * rejection_hours - p * priority * priority_hours`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from services.dispatch.routing import Department, RoutingTable

Via = Literal["rule", "catalogue", "fallback"]
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
    late_hours: float
    cost: float


@dataclass(frozen=True)
class Assignment:
    department: str
    reason: str
    estimates: tuple[Estimate, ...]


def candidates(table: RoutingTable, category: str, district: str | None) -> list[Candidate]:
    """Departments that may take the ticket: rules and catalogues first; the district's fallback after."""
    found: dict[str, Candidate] = {}
    for rule in table.rules:
        if rule.category != category or (rule.district is not None and rule.district != district):
            continue
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
    if not pool:
        owner = table.fallback_for(demand.district)
        if owner in exclude:
            return None
        pool = [Candidate(owner, 0, "fallback")]
    estimates = []
    for c in pool:
        dept = table.department(c.department)
        if dept is not None:
            estimates.append(_estimate(table, dept, c, demand, supply, now))
    if not estimates:
        return None
    estimates.sort(key=lambda e: (round(e.late_hours, 1), e.cost, e.candidate.department))
    return Assignment(estimates[0].candidate.department, _reason(estimates), tuple(estimates))


def _estimate(
    table: RoutingTable, dept: Department, c: Candidate, demand: Demand, supply: Supply, now: datetime
) -> Estimate:
    policy = table.policy
    local = now.astimezone(table.zone())
    ahead = supply.ahead(dept.id, demand.feedback_due)
    done = dept.hours.finish(local, (ahead + 1) / dept.hourly_rate())
    eta = (done - local).total_seconds() / 3600
    signs = (dept.hours.finish(local, 0.0) - local).total_seconds() / 3600
    counts = supply.acceptance(dept.id, demand.category, demand.district)
    rate = (counts.accepts + policy.prior_accepts) / (
        counts.accepts + counts.rejects + policy.prior_accepts + policy.prior_rejects
    )
    retry = (1 - rate) * policy.rejection_hours
    late = max(0.0, signs - _hours(demand.dispatch_due, now)) + max(
        0.0, eta + retry - _hours(demand.feedback_due, now)
    )
    return Estimate(
        candidate=c,
        ahead=ahead,
        capacity=dept.capacity,
        open_now=signs == 0,
        accept_rate=rate,
        counts=counts,
        eta_hours=eta,
        late_hours=late,
        # A preference is worth only as much as the chance the department takes the ticket.
        cost=eta + retry - rate * c.priority * policy.priority_hours,
    )


def _hours(until: datetime, now: datetime) -> float:
    return (until - now).total_seconds() / 3600


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
        "on time" if best.late_hours == 0 else f"late {best.late_hours:.1f}h",
    ]
    text = f"{c.department}: " + ", ".join(parts)
    if len(estimates) > 1:
        other = estimates[1]
        text += f"; next {other.candidate.department} (eta {other.eta_hours:.1f}h"
        text += f", late {other.late_hours:.1f}h)" if other.late_hours else ")"
    return text
