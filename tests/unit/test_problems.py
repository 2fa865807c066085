"""Problems: detection, attachment, the action policy, reopening and the effect evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.insight.places import Place
from services.insight.problem_pass import sightings_of
from services.insight.problems import (
    Problem,
    ProblemPolicy,
    Sighting,
    action_rule,
    evaluate,
    observe,
    place_problem_key,
    problem_id,
    surge_rule,
)
from shared.store import Ticket

T0 = datetime(2026, 9, 1, 9, tzinfo=UTC)
KEY = place_problem_key("estate:魅力之城", "environment")


def seen(n: int, at: datetime, key: str = KEY) -> Sighting:
    return Sighting(f"T{n}", at, key, "environment", "A5区", key.split("|")[0], "魅力之城小区油烟扰民")


def test_a_problem_is_detected_at_the_third_ticket_within_the_window_and_later_ones_attach() -> None:
    problems: dict[str, Problem] = {}
    pending: dict[str, list[tuple[str, float]]] = {}
    policy = ProblemPolicy(detect_repeats=3, window_days=7)
    first = observe(problems, pending, [seen(1, T0), seen(2, T0 + timedelta(days=8))], policy)
    assert first.detected == [] and len(pending[KEY]) == 1, "the first call fell out of the window"
    second = observe(
        problems, pending, [seen(3, T0 + timedelta(days=9)), seen(4, T0 + timedelta(days=10))], policy
    )
    [p] = second.detected
    assert p.problem_id == problem_id(KEY) and p.ticket_ids == ["T2", "T3", "T4"] and p.tickets == 3
    assert p.first_seen == T0 + timedelta(days=8) and KEY not in pending
    later = observe(
        problems, pending, [seen(5, T0 + timedelta(days=30)), seen(4, T0 + timedelta(days=10))], policy
    )
    assert later.attached == [p] and p.tickets == 4 and p.last_seen == T0 + timedelta(days=30)
    other = place_problem_key("estate:润芳园", "environment")
    observe(problems, pending, [seen(6, T0 + timedelta(days=30), other)], policy)
    assert len(problems) == 1 and pending[other] == [("T6", (T0 + timedelta(days=30)).timestamp())]


def _problem(calls: dict[date, int], **over: object) -> Problem:
    p = Problem(problem_id="p", key=KEY, category="environment", label="x", first_seen=T0, last_seen=T0)
    n = 0
    for day, count in sorted(calls.items()):
        for _ in range(count):
            n += 1
            p.attach(f"T{n}", datetime(day.year, day.month, day.day, 10, tzinfo=UTC))
    return p.model_copy(update=over)


def test_the_policy_acts_on_repeats_only_when_turned_on_and_only_on_an_open_problem() -> None:
    p = _problem({T0.date() - timedelta(days=i): 2 for i in range(3)})
    assert action_rule(p, ProblemPolicy(), T0) is None, "off by default"
    assert action_rule(p, ProblemPolicy(act_repeats=6), T0) == "policy:repeats>=6/7d"
    assert action_rule(p, ProblemPolicy(act_repeats=7), T0) is None
    assert action_rule(p.model_copy(update={"status": "actioned"}), ProblemPolicy(act_repeats=6), T0) is None
    assert surge_rule(12, 2.0, ProblemPolicy(act_surge_ratio=4)) == "policy:surge>=4x"
    assert surge_rule(5, 0.5, ProblemPolicy(act_surge_ratio=4)) is None, "too few tickets"
    assert surge_rule(12, 4.0, ProblemPolicy(act_surge_ratio=4)) is None


def _steady(days: int, per_day: int, end: date) -> dict[date, int]:
    return {end - timedelta(days=i): per_day + (i % 3) for i in range(days)}


def test_calls_that_stop_after_the_work_order_worked_and_calls_that_go_on_had_no_effect() -> None:
    actioned = datetime(2026, 10, 1, 12, tzinfo=UTC)
    resolved = actioned + timedelta(days=2)
    history = _steady(35, 4, actioned.date() - timedelta(days=1))
    control = _steady(60, 40, date(2026, 10, 31))
    policy = ProblemPolicy(eval_days=14)
    now = resolved + timedelta(days=15)
    stopped = _problem(
        history | {resolved.date() + timedelta(days=3): 1}, actioned_at=actioned, resolved_at=resolved
    )
    result = evaluate(stopped, now, policy, control, control)
    assert result is not None and result.verdict == "worked"
    assert result.days == 14 and result.observed == 1
    assert 60 < result.expected < 90 and result.expected_lower <= result.expected <= result.expected_upper
    assert result.avoided == round(result.expected - 1, 2) and 0.9 < result.control_ratio < 1.1
    after = _steady(14, 4, resolved.date() + timedelta(days=14))
    going_on = _problem(history | after, actioned_at=actioned, resolved_at=resolved)
    result = evaluate(going_on, now, policy, control, control)
    assert result is not None and result.verdict == "no effect" and result.observed == sum(after.values())
    early = evaluate(stopped, resolved + timedelta(days=5), policy, control, control)
    assert early is not None and early.verdict == "too early" and early.days == 5


def test_the_control_scales_the_counterfactual() -> None:
    """When the whole category halves in the other districts too, fewer calls are expected here."""
    actioned = datetime(2026, 10, 1, 12, tzinfo=UTC)
    resolved = actioned + timedelta(days=1)
    history = _steady(35, 4, actioned.date() - timedelta(days=1))
    before = _steady(40, 40, actioned.date() - timedelta(days=1))
    halved = {d: n // 2 for d, n in _steady(20, 40, resolved.date() + timedelta(days=20)).items()}
    p = _problem(history, actioned_at=actioned, resolved_at=resolved)
    now = resolved + timedelta(days=15)
    flat = evaluate(
        p, now, ProblemPolicy(), before, before | _steady(20, 40, resolved.date() + timedelta(days=20))
    )
    scaled = evaluate(p, now, ProblemPolicy(), before, before | halved)
    assert flat is not None and scaled is not None
    assert scaled.control_ratio < 0.6 and scaled.expected < 0.6 * flat.expected


def test_calls_coming_back_after_the_resolution_reopen_the_problem() -> None:
    problems: dict[str, Problem] = {}
    policy = ProblemPolicy(detect_repeats=2, reopen_repeats=3)
    observe(problems, {}, [seen(1, T0), seen(2, T0)], policy)
    p = problems[problem_id(KEY)]
    p.status, p.resolved_at = "evaluated", T0 + timedelta(days=1)
    calls = [seen(10 + i, T0 + timedelta(days=2, hours=i)) for i in range(3)]
    assert observe(problems, {}, calls[:2], policy).reopened == []
    assert observe(problems, {}, calls[2:], policy).reopened == [p] and p.status == "reopened"


def test_a_pass_reports_each_changed_problem_once_and_the_pending_tallies_it_wrote() -> None:
    """What the pass commits: the problems changed (each once, in the order first seen, however many of
    its tickets came) and only the pending tallies written or dropped, not every tally kept."""
    problems: dict[str, Problem] = {}
    other, third = (
        place_problem_key("estate:润芳园", "environment"),
        place_problem_key("road:凉塘路", "roads"),
    )
    pending: dict[str, list[tuple[str, float]]] = {third: [("T0", T0.timestamp())]}
    policy = ProblemPolicy(detect_repeats=3, window_days=7)
    found = observe(problems, pending, [seen(n, T0 + timedelta(hours=n)) for n in range(1, 4)], policy)
    assert [p.key for p in found.detected] == [KEY] and found.pending == {KEY}
    later = observe(
        problems,
        pending,
        [seen(n, T0 + timedelta(days=1, hours=n), KEY if n % 2 else other) for n in range(4, 8)],
        policy,
    )
    assert [p.key for p in later.attached] == [KEY] and problems[problem_id(KEY)].tickets == 5
    assert later.pending == {other} and set(pending) == {other, third}


def test_a_pass_takes_the_places_the_clusterer_found_and_finds_only_the_others() -> None:
    said = "A5区魅力之城小区底层餐馆油烟扰民"
    tickets = [
        Ticket(ticket_id=f"T{n}", text=said, category="environment", received_at=T0, district="A5区")
        for n in range(2)
    ]
    named = {"T0": [Place("estate", "润芳园")]}  # what the clusterer found for T0 (here: made up)
    sightings = sightings_of(tickets, {}, named)
    assert [s.place for s in sightings] == ["estate:润芳园", "estate:魅力之城"]
