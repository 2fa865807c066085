"""Staffing (Erlang C and A) and the week's plan from the forecast."""

from __future__ import annotations

import heapq
import random
from datetime import date, timedelta

import numpy as np
import pytest

from services.dispatch.routing import Department, RoutingTable, Rule, WorkingHours
from services.insight.plan import CallTargets, hour_profile, plan_week
from services.insight.staffing import agents_needed, erlang_a, erlang_c, erlang_c_wait_probability


def simulate(
    calls_per_hour: float, handle: float, agents: int, patience: float | None, target: float
) -> tuple[float, float]:
    """(share answered within target, share abandoned) of an M/M/N(+M) queue, by simulation (FIFO)."""
    rng = random.Random(7)
    lam = calls_per_hour / 3600
    free_at = [0.0] * agents  # when each agent is next free
    heapq.heapify(free_at)
    t, answered, abandoned, n = 0.0, 0, 0, 60_000
    for _ in range(n):
        t += rng.expovariate(lam)
        gives_up = t + (rng.expovariate(1 / patience) if patience else float("inf"))
        start = max(t, free_at[0])
        if start > gives_up:
            abandoned += 1
            continue
        heapq.heapreplace(free_at, start + rng.expovariate(1 / handle))
        answered += start - t <= target
    return answered / n, abandoned / n


def test_erlang_c_matches_the_textbook_figures() -> None:
    # 10 Erlangs on 11 agents: a caller waits with probability 0.682 (any Erlang C table).
    assert erlang_c_wait_probability(11, 10.0) == pytest.approx(0.6821, abs=1e-3)
    # 200 calls an hour of 180 s, 80% within 20 s: 13 agents give 79.6%, so 14 are needed.
    assert erlang_c(200, 180, 20, 13).service_level == pytest.approx(0.7956, abs=2e-3)
    assert agents_needed(200, 180, target_level=0.8, target_seconds=20).agents == 14


def test_erlang_c_agrees_with_a_simulated_queue() -> None:
    level = erlang_c(200, 180, 20, 14).service_level
    simulated, _ = simulate(200, 180, 14, None, 20)
    assert level == pytest.approx(simulated, abs=0.02)


@pytest.mark.parametrize("agents", [9, 12])
def test_erlang_a_agrees_with_a_simulated_queue_with_abandonment(agents: int) -> None:
    s = erlang_a(200, 180, 20, agents, patience_seconds=120)
    level, gone = simulate(200, 180, agents, 120, 20)
    assert s.service_level == pytest.approx(level, abs=0.02)
    assert s.abandoned == pytest.approx(gone, abs=0.02)


def test_erlang_a_needs_no_more_agents_than_erlang_c_and_tends_to_it_with_patient_callers() -> None:
    c = agents_needed(400, 240, target_level=0.8, target_seconds=20)
    a = agents_needed(400, 240, target_level=0.8, target_seconds=20, patience_seconds=60)
    patient = agents_needed(400, 240, target_level=0.8, target_seconds=20, patience_seconds=1e7)
    assert a.agents <= c.agents
    assert a.abandoned > 0.01
    assert patient.agents == c.agents


def test_no_calls_need_no_agents() -> None:
    assert agents_needed(0, 300, target_level=0.8, target_seconds=20).agents == 0


def _routing() -> RoutingTable:
    office = WorkingHours(days=["mon", "tue", "wed", "thu", "fri"])
    return RoutingTable(
        timezone="UTC",
        departments=[
            Department(id="roads", name="Roads", capacity=10, hours=office),
            Department(id="street", name="Street office", capacity=100),
        ],
        rules=[Rule(category="transport", department="roads")],
        fallback="street",
        coordinator="street",
    )


def test_the_week_spreads_days_over_hours_and_finds_the_short_days() -> None:
    monday = date(2026, 11, 30)
    # Calls only in the 10:00 hour, every day.
    hourly = {"transport|D1": np.tile(np.eye(24, dtype=np.int64)[10], 14)}
    profile = hour_profile(hourly, monday - timedelta(days=14))
    assert profile[0, 10] == 1.0 and profile[0].sum() == pytest.approx(1.0)
    plan = plan_week(
        {"transport|D1": [12.0] * 7, "noise|D1": [3.0] * 7}, profile, monday, _routing(), CallTargets()
    )
    assert len(plan.hours) == 7 * 24
    assert plan.hours[10].calls == pytest.approx(15.0) and plan.hours[9].calls == 0
    assert plan.hours[10].erlang_c.agents >= plan.hours[10].erlang_a.agents > 0
    assert plan.hours[9].erlang_c.agents == 0
    roads = [d for d in plan.departments if d.department == "roads"]
    # 10 a day over the week = 14 on each of 5 working days: 12 a day fits, the weekend does not.
    assert [d.capacity for d in roads] == pytest.approx([14, 14, 14, 14, 14, 0, 0])
    assert [d.short for d in roads] == [False] * 5 + [True, True]
    assert roads[-1].backlog == pytest.approx(24.0)
    street = [d for d in plan.departments if d.department == "street"]
    assert sum(d.expected for d in street) == pytest.approx(21.0) and not any(d.short for d in street)
