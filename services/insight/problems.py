"""Problems: the loop closed at the level of a problem, not a ticket (未诉先办).

A problem is one place and topic (the place named in the tickets, `places.key`, and their category), or a
category x district series in a surge. Tickets on the same place and topic attach to it as they come. It is
*detected* once `detect_repeats` tickets name it within `window_days`, or when its series surges. It is
*actioned* when a proactive work order is opened for it (by a supervisor, or by the policy: `act_repeats`
tickets in the window, or a surge `act_surge_ratio` times its expected count); *resolved* when that order
is; *evaluated* `eval_days` after that. Calls that come back (`reopen_repeats` in the window after the
resolution) reopen it, and the next round can act again.

The evaluation compares the calls after the resolution with the counterfactual: the forecast fitted on the
problem's own daily calls before the action, scaled by how comparable untreated series moved over the same
days against their own forecast (the control). Its interval is the 10-90% band of the forecast's total over
those days (each day's spread added as independent variances), scaled alike; a
problem *worked* when fewer calls came than the band's lower end, else it had *no effect*; before
`eval_days` it is *too early*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.insight.forecast import dense_daily, forecast
from shared.events import ProblemStatus, Verdict
from shared.ids import derive_id

Z90 = 1.2816  # the standard normal's 90th percentile: a 10-90% band is +-Z90 standard deviations
KEEP_MEMBERS = 500  # the ids kept on a problem; its count goes on past them
KEEP_DAYS = 180  # days of the daily count kept (the forecast reads the weeks before an action)


@dataclass(frozen=True)
class ProblemPolicy:
    detect_repeats: int = 3
    window_days: int = 7
    act_repeats: int = 0  # 0: the policy never acts on repeats (supervisors still can)
    act_surge_ratio: float = 0.0  # 0: never on surges
    act_surge_min: int = 6  # a surge must also hold this many tickets
    eval_days: int = 14
    reopen_repeats: int = 3


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    days: int
    expected: float
    expected_lower: float
    expected_upper: float
    observed: int
    avoided: float
    control_ratio: float
    verdict: Verdict
    at: datetime


class Problem(BaseModel):
    problem_id: str
    key: str
    category: str
    district: str | None = None
    place: str | None = None
    label: str
    status: ProblemStatus = "open"
    ticket_ids: list[str] = []
    tickets: int = 0
    evidence: list[str] = []
    first_seen: datetime
    last_seen: datetime
    daily: dict[str, int] = Field(default={}, description="Member tickets per UTC day (ISO date -> count)")
    round: int = 1
    proactive_ticket_id: str | None = None
    actioned_at: datetime | None = None
    actioned_by: str | None = None
    resolved_at: datetime | None = None
    evaluation: Evaluation | None = None
    history: list[Evaluation] = Field(default=[], description="Earlier rounds' evaluations")
    returned: list[datetime] = Field(default=[], description="Calls since the resolution, within the window")

    def attach(self, ticket_id: str, at: datetime) -> bool:
        """Count a ticket in; False when it is a member already (a replay changes nothing)."""
        if ticket_id in self.ticket_ids:
            return False
        self.ticket_ids.append(ticket_id)
        del self.ticket_ids[:-KEEP_MEMBERS]
        self.tickets += 1
        self.first_seen = min(self.first_seen, at)
        self.last_seen = max(self.last_seen, at)
        day = at.date().isoformat()
        self.daily[day] = self.daily.get(day, 0) + 1
        if len(self.daily) > KEEP_DAYS:
            for old in sorted(self.daily)[: len(self.daily) - KEEP_DAYS]:
                del self.daily[old]
        return True

    def calls_between(self, start: datetime, end: datetime) -> int:
        """Member tickets on the days from `start`'s to `end`'s (inclusive)."""
        first, last = start.date(), end.date()
        return sum(n for d, n in self.daily.items() if first <= date.fromisoformat(d) <= last)

    def event_fields(self, step: str, now: datetime) -> dict[str, Any]:
        """What every problem event says of it; the id is one per problem, step and round."""
        return {
            "event_id": derive_id(self.problem_id, step, str(self.round)),
            "ticket_id": self.problem_id,
            "occurred_at": now,
            "key": self.key,
            "category": self.category,
            "district": self.district,
            "place": self.place,
            "label": self.label,
            "status": self.status,
            "ticket_ids": self.ticket_ids[-50:],
            "tickets": self.tickets,
        }

    @property
    def open_for_action(self) -> bool:
        return self.status in ("open", "reopened")


@dataclass(frozen=True)
class Sighting:
    """A classified ticket that names a place (or falls in a surging series)."""

    ticket_id: str
    at: datetime
    key: str
    category: str
    district: str | None
    place: str | None
    label: str


def place_problem_key(place_key: str, category: str) -> str:
    return f"{place_key}|{category}"


def series_problem_key(category: str, district: str | None) -> str:
    return f"series:{category}|{district or '-'}"


def problem_id(key: str) -> str:
    return derive_id("problem", key)


@dataclass
class Changes:
    detected: list[Problem]
    attached: list[Problem]
    reopened: list[Problem]
    pending: set[str]  # the keys of the pending tallies written or dropped


def observe(
    problems: dict[str, Problem],
    pending: dict[str, list[tuple[str, float]]],
    sightings: Iterable[Sighting],
    policy: ProblemPolicy,
) -> Changes:
    """Attach each sighting to its problem, or count it towards one; `problems` (by id) and `pending` (by
    key: ticket ids and times not yet a problem) are updated in place."""
    detected: list[Problem] = []
    # By id, in the order first seen: a pass attaches thousands of tickets to hundreds of problems.
    attached: dict[str, Problem] = {}
    reopened: dict[str, Problem] = {}
    touched: set[str] = set()
    window = timedelta(days=policy.window_days).total_seconds()
    for s in sorted(sightings, key=lambda s: s.at):
        pid = problem_id(s.key)
        problem = problems.get(pid)
        if problem is not None:
            if problem.attach(s.ticket_id, s.at):
                attached.setdefault(pid, problem)
                if _comes_back(problem, s.at, policy):
                    problem.status = "reopened"
                    problem.evidence.append(
                        f"calls came back: {policy.reopen_repeats}+ within {policy.window_days} days after "
                        f"the resolution of {problem.proactive_ticket_id}"
                    )
                    reopened.setdefault(pid, problem)
            continue
        seen = [(t, ts) for t, ts in pending.get(s.key, []) if s.at.timestamp() - ts <= window]
        if s.ticket_id not in {t for t, _ in seen}:
            seen.append((s.ticket_id, s.at.timestamp()))
        pending[s.key] = seen
        touched.add(s.key)
        if len(seen) >= policy.detect_repeats:
            del pending[s.key]
            start = datetime.fromtimestamp(seen[0][1], s.at.tzinfo)
            problem = Problem(
                problem_id=pid,
                key=s.key,
                category=s.category,
                district=s.district,
                place=s.place,
                label=s.label,
                first_seen=start,
                last_seen=start,
                evidence=[
                    f"{len(seen)} tickets on {s.place or s.key} ({s.category}) in {policy.window_days} days"
                ],
            )
            for ticket_id, ts in seen:
                problem.attach(ticket_id, datetime.fromtimestamp(ts, s.at.tzinfo))
            problems[pid] = problem
            detected.append(problem)
    return Changes(detected, list(attached.values()), list(reopened.values()), touched)


def _comes_back(problem: Problem, at: datetime, policy: ProblemPolicy) -> bool:
    if (
        problem.status not in ("resolved", "evaluated")
        or problem.resolved_at is None
        or at < problem.resolved_at
    ):
        return False
    problem.returned.append(at)
    window = timedelta(days=policy.window_days)
    problem.returned = [t for t in problem.returned if at - t <= window]
    return len(problem.returned) >= policy.reopen_repeats


def action_rule(problem: Problem, policy: ProblemPolicy, now: datetime) -> str | None:
    """The policy rule that opens a proactive work order for the problem now, if any. Every pass asks it
    of every problem (a problem's calls in the window fall as days pass without one), so it counts the
    calls only when the policy acts on repeats at all."""
    if not policy.act_repeats or not problem.open_for_action or problem.key.startswith("series:"):
        return None
    recent = problem.calls_between(now - timedelta(days=policy.window_days - 1), now)
    if recent >= policy.act_repeats:
        return f"policy:repeats>={policy.act_repeats}/{policy.window_days}d"
    return None


def surge_rule(count: int, expected: float, policy: ProblemPolicy) -> str | None:
    """The policy rule that acts on a surge of `count` tickets where `expected` were, if any."""
    if (
        policy.act_surge_ratio
        and count >= policy.act_surge_min
        and count >= policy.act_surge_ratio * expected
    ):
        return f"policy:surge>={policy.act_surge_ratio:g}x"
    return None


def evaluate(
    problem: Problem,
    now: datetime,
    policy: ProblemPolicy,
    control_before: Mapping[date, int],
    control_after: Mapping[date, int],
) -> Evaluation | None:
    """The problem's calls after its resolution against the counterfactual (see the module's doc).

    `control_before` / `control_after`: the daily calls of comparable untreated series (the same category
    elsewhere) over the problem's history before the action and over the days compared."""
    if problem.resolved_at is None or problem.actioned_at is None:
        return None
    first_after = problem.resolved_at.date() + timedelta(days=1)
    days = min(policy.eval_days, (now.date() - first_after).days + 1)
    if days < 1:
        return Evaluation(
            days=0,
            expected=0,
            expected_lower=0,
            expected_upper=0,
            observed=0,
            avoided=0,
            control_ratio=1.0,
            verdict="too early",
            at=now,
        )
    last_before = problem.actioned_at.date() - timedelta(days=1)
    start = min(date.fromisoformat(d) for d in problem.daily) if problem.daily else last_before
    start = min(start, last_before)
    before = {date.fromisoformat(d): n for d, n in problem.daily.items()}
    own = forecast(
        dense_daily(before, start, last_before), last_before, horizon=_horizon(first_after, last_before, days)
    )
    skip = (first_after - last_before).days - 1  # days between the action and the day after resolution
    point = sum(own.point[skip : skip + days])
    # The band of the total, not the sum of the daily bands (which would be far too wide): each day's spread
    # from its 90th percentile, added as independent variances.
    spread = math.sqrt(
        sum(
            ((u - p) / Z90) ** 2
            for p, u in zip(own.point[skip : skip + days], own.upper[skip : skip + days], strict=True)
        )
    )
    lower, upper = max(0.0, point - Z90 * spread), point + Z90 * spread
    ratio = _control_ratio(control_before, control_after, start, last_before, first_after, days)
    expected, lower, upper = point * ratio, lower * ratio, upper * ratio
    observed = sum(n for d, n in before.items() if first_after <= d < first_after + timedelta(days=days))
    verdict: Verdict
    if days < policy.eval_days:
        verdict = "too early"
    elif observed < lower:
        verdict = "worked"
    else:
        verdict = "no effect"
    return Evaluation(
        days=days,
        expected=round(expected, 2),
        expected_lower=round(lower, 2),
        expected_upper=round(upper, 2),
        observed=observed,
        avoided=round(expected - observed, 2),
        control_ratio=round(ratio, 3),
        verdict=verdict,
        at=now,
    )


def _horizon(first_after: date, last_before: date, days: int) -> int:
    return (first_after - last_before).days - 1 + days


def _control_ratio(
    before: Mapping[date, int],
    after: Mapping[date, int],
    start: date,
    last_before: date,
    first_after: date,
    days: int,
) -> float:
    """How the untreated series did against their own forecast over the days compared (1: as forecast).
    Bounded to [0.5, 2]: a control that moved more than that says more about the control than the city."""
    if not before:
        return 1.0
    control = forecast(
        dense_daily(dict(before), start, last_before),
        last_before,
        horizon=_horizon(first_after, last_before, days),
    )
    skip = (first_after - last_before).days - 1
    expected = sum(control.point[skip : skip + days])
    observed = sum(n for d, n in after.items() if first_after <= d < first_after + timedelta(days=days))
    if expected <= 0:
        return 1.0
    return min(2.0, max(0.5, observed / expected))
