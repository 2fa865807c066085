"""Evaluation's rate math, case mix and handlers, with in-memory state (no Redis)."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.evaluation.handlers import Policy, on_answered, on_dispatched, on_updated, with_state
from services.evaluation.rates import (
    Table,
    Units,
    assess,
    board,
    bucket_of,
    check_bucket,
    count,
    rank,
    standardise,
)
from services.evaluation.report import MonthReport, csv_rows, render_html
from services.evaluation.state import TicketState
from services.intake.surveys import SurveyAnswer
from shared import streams
from shared.effects import Effects, Increment, Op, SortedAdd
from shared.events import SurveyAnswered, TicketDispatched, TicketReopened, TicketUpdated
from shared.outbound import RetryPolicy

T0 = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = Policy(tz=SHANGHAI, survey_delay=timedelta(hours=1), supervision_after=2)


# -- windows and counters ---------------------------------------------------------------------------


def test_buckets_follow_the_city_clock_not_utc() -> None:
    late_utc = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 04:00 on 1 December in Beijing
    assert [bucket_of(w, late_utc, SHANGHAI) for w in ("day", "week", "month")] == [
        "2026-12-01",
        "2026-W49",
        "2026-12",
    ]
    assert bucket_of("month", late_utc, UTC) == "2026-11"


@pytest.mark.parametrize(
    ("window", "bucket", "ok"),
    [
        ("month", "2026-11", True),
        ("month", "2026-13", False),
        ("month", "2026-1", False),
        ("day", "2026-02-29", False),
        ("day", "2028-02-29", True),
        ("week", "2026-W48", True),
        ("week", "2026-W60", False),
        ("week", "2026-48", False),
    ],
)
def test_buckets_are_checked(window: str, bucket: str, ok: bool) -> None:
    if ok:
        assert check_bucket(window, bucket) == bucket  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match="is not a"):
            check_bucket(window, bucket)  # type: ignore[arg-type]


def test_one_count_touches_day_week_month_for_department_and_district() -> None:
    ops = count(Units.of("water", "A3区", "utilities"), "dispatched", T0, SHANGHAI)
    assert len(ops) == 6
    assert Increment("hotline:rates:week:2026-W46", "district|A3区|utilities|dispatched") in ops
    assert Units.of(None, " ", "a|b") == Units("unknown", "unknown", "a/b")


def table(rows: dict[tuple[str, str], dict[str, int]], dimension: str = "department") -> Table:
    raw: dict[bytes | str, bytes | str] = {}
    for (unit, category), counts in rows.items():
        for measure, n in counts.items():
            raw[f"{dimension}|{unit}|{category}|{measure}"] = str(n)
    raw["department|x|y|a_measure_from_the_future"] = "7"  # ignored, like an unknown event field
    return Table.from_hash(raw)


# Unit B gets only the hard category and beats the city there; A gets only the easy one and is average.
CASE_MIX = {
    ("A", "easy"): {"evaluated": 100, "resolved": 90},
    ("B", "hard"): {"evaluated": 100, "resolved": 60},
    ("C", "easy"): {"evaluated": 100, "resolved": 90},
    ("C", "hard"): {"evaluated": 100, "resolved": 40},
}


def test_case_mix_adjustment_is_indirect_standardisation_against_the_other_units() -> None:
    figures = standardise(table(CASE_MIX).by_category("department"), "resolution")
    city = 280 / 400

    def benchmark(others_resolved: int, others_evaluated: int) -> float:
        return (others_resolved + 5 * city) / (others_evaluated + 5)

    a, b, c = figures["A"], figures["B"], figures["C"]
    expected_a = 100 * benchmark(90, 100)  # easy, as C does it
    expected_b = 100 * benchmark(40, 100)  # hard, as C does it
    expected_c = 100 * benchmark(90, 100) + 100 * benchmark(60, 100)
    assert (a.raw, a.expected, a.ratio) == pytest.approx((0.9, expected_a, 90 / expected_a))
    assert (b.raw, b.expected, b.ratio) == pytest.approx((0.6, expected_b, 60 / expected_b))
    assert (c.raw, c.expected, c.ratio) == pytest.approx((0.65, expected_c, 130 / expected_c))


def test_a_category_nobody_else_handles_leaves_its_unit_unadjusted() -> None:
    rows = {**CASE_MIX, ("W", "water"): {"evaluated": 50, "resolved": 45}}
    w = standardise(table(rows).by_category("department"), "resolution")["W"]
    city = (280 + 45) / (400 + 50)
    # the city's rate is its benchmark
    assert (w.expected, w.ratio) == pytest.approx((50 * city, w.raw / city))


def test_the_adjusted_ranking_stops_punishing_the_unit_with_the_hardest_cases() -> None:
    units = {u.unit: u for u in assess(table(CASE_MIX), "department", min_volume=20)}
    raw_order = sorted(units, key=lambda u: -(units[u].rates["resolution"].raw or 0))
    adjusted_order = sorted(units, key=lambda u: units[u].rates["resolution"].rank or 99)
    assert raw_order == ["A", "C", "B"]
    assert adjusted_order == ["B", "A", "C"]


def test_units_below_the_minimum_volume_are_not_ranked() -> None:
    rows = {**CASE_MIX, ("D", "easy"): {"evaluated": 19, "resolved": 19}}
    units = {u.unit: u for u in assess(table(rows), "department", min_volume=20)}
    assert units["D"].rates["resolution"].rank is None and not units["D"].ranked
    assert units["D"].rates["resolution"].raw == 1.0
    assert sorted(u.rates["resolution"].rank or 0 for u in units.values() if u.ranked) == [1, 2, 3]


def test_ties_share_a_rank() -> None:
    figures = standardise(
        table(
            {
                ("A", "c"): {"evaluated": 40, "resolved": 20},
                ("B", "c"): {"evaluated": 40, "resolved": 20},
                ("C", "c"): {"evaluated": 40, "resolved": 30},
            }
        ).by_category("department"),
        "resolution",
    )
    ranked = rank(figures, min_volume=1)
    assert [ranked[u].rank for u in "CAB"] == [1, 2, 2]


def test_category_and_city_figures_are_sums_of_department_rows() -> None:
    t = table(CASE_MIX)
    cats = {u.unit: u for u in assess(t, "category", min_volume=1)}
    assert cats["hard"].counts["evaluated"] == 200 and cats["hard"].rates["resolution"].raw == 0.5
    assert cats["hard"].rates["resolution"].ratio is None  # a category is its own mix
    assert t.city()["resolved"] == 280


def test_a_rate_with_no_cases_is_none_not_zero() -> None:
    [unit] = assess(table({("A", "c"): {"dispatched": 3}}), "department", min_volume=1)
    assert unit.rates["satisfaction"].raw is None and unit.rates["response"].raw == 0.0


# -- handlers -------------------------------------------------------------------------------------------


def dispatched(
    at: datetime = T0, department: str = "water", due: timedelta = timedelta(hours=2)
) -> TicketDispatched:
    return TicketDispatched(
        event_id=f"d-{at.isoformat()}",
        ticket_id="T1",
        occurred_at=at,
        department=department,
        category="utilities",
        district="A3区",
        urgency="utilities",
        dispatch_due_at=at + due,
        feedback_due_at=at + timedelta(days=1),
        reason="rule",
        received_at=at,
    )


def updated(action: str, at: datetime, department: str = "water", n: int = 1) -> TicketUpdated:
    return TicketUpdated(
        event_id=f"u-{action}-{n}",
        ticket_id="T1",
        occurred_at=at,
        department=department,
        action=action,  # type: ignore[arg-type]
    )


def answered(resolved: bool, satisfaction: int | None, survey_round: int = 1) -> SurveyAnswered:
    return SurveyAnswered(
        event_id=f"a-{survey_round}",
        ticket_id="T1",
        occurred_at=T0 + timedelta(days=1),
        resolved=resolved,
        satisfaction=satisfaction,
        comment="还是没修好" if not resolved else None,
        survey_round=survey_round,
    )


def after(state: TicketState, effects: Effects) -> TicketState:
    for write in effects.writes:
        state = state.merged(write.fields)
    return state


def dispatched_state() -> TicketState:
    return after(TicketState(exists=True), on_dispatched(dispatched(), TicketState(), POLICY))


def measures(effects: Effects) -> Counter[str]:
    return Counter(
        op.field.rsplit("|", 1)[1]
        for w in effects.writes
        for op in w.ops
        if isinstance(op, Increment) and "month" in op.key
    )


def test_an_accept_within_the_deadline_counts_as_a_response_once() -> None:
    state = dispatched_state()
    accept = on_updated(updated("accept", T0 + timedelta(minutes=30)), state, POLICY)
    assert measures(accept) == {"responded": 2}  # department and district rows
    state = after(state, accept)
    resolve = on_updated(updated("resolve", T0 + timedelta(hours=5)), state, POLICY)
    assert measures(resolve) == {}  # already signed for


def test_a_late_accept_is_recorded_but_not_counted() -> None:
    effects = on_updated(updated("accept", T0 + timedelta(hours=3)), dispatched_state(), POLICY)
    assert measures(effects) == {}
    assert effects.writes[0].fields["eval_responded_in_time"] == "0"


def test_another_departments_action_is_not_a_response() -> None:
    assert on_updated(updated("accept", T0, department="police"), dispatched_state(), POLICY).writes == ()


def test_the_response_lands_in_the_dispatch_bucket_even_when_signed_for_next_month() -> None:
    at = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 23:00 on 30 November in Beijing
    state = after(
        TicketState(), on_dispatched(dispatched(at, due=timedelta(hours=24)), TicketState(), POLICY)
    )
    effects = on_updated(updated("accept", at + timedelta(hours=2)), state, POLICY)
    assert {op.key for op in effects.writes[0].ops if "month" in op.key} == {"hotline:rates:month:2026-11"}


def test_a_resolve_schedules_one_survey_after_the_delay() -> None:
    resolved_at = T0 + timedelta(hours=5)
    effects = on_updated(updated("resolve", resolved_at), dispatched_state(), POLICY)
    [write] = effects.writes
    assert (
        SortedAdd("hotline:surveys:due", "T1|1", (resolved_at + timedelta(hours=1)).timestamp()) in write.ops
    )
    assert write.fields["eval_survey_round"] == "1" and write.fields["eval_survey_department"] == "water"
    again = on_updated(updated("resolve", resolved_at, n=2), after(dispatched_state(), effects), POLICY)
    assert again.writes == ()


def test_a_resolved_proactive_work_order_is_not_surveyed_but_its_response_counts() -> None:
    order = dispatched_state().model_copy(update={"channel": "proactive"})
    [write] = on_updated(updated("resolve", T0 + timedelta(minutes=30)), order, POLICY).writes
    assert not any(op.key == "hotline:surveys:due" for op in write.ops)
    assert "eval_survey_round" not in write.fields and write.fields["eval_responded_in_time"] == "1"


@pytest.mark.parametrize(
    ("resolved", "satisfaction", "expected", "reopens"),
    [
        (True, 5, {"evaluated": 2, "resolved": 2, "rated": 2, "satisfied": 2}, False),
        (True, 4, {"evaluated": 2, "resolved": 2, "rated": 2, "satisfied": 2}, False),
        (True, 3, {"evaluated": 2, "resolved": 2, "rated": 2}, False),
        (True, 2, {"evaluated": 2, "resolved": 2, "rated": 2, "reopened": 2}, True),
        (False, 5, {"evaluated": 2, "rated": 2, "satisfied": 2, "reopened": 2}, True),
    ],
)
def test_answers_count_as_defined_and_reopen_when_not_fixed(
    resolved: bool, satisfaction: int, expected: dict[str, int], reopens: bool
) -> None:
    state = after(dispatched_state(), on_updated(updated("resolve", T0), dispatched_state(), POLICY))
    effects = on_answered(answered(resolved, satisfaction), state, POLICY)
    assert measures(effects) == expected
    assert [p.stream for p in effects.publish] == ([streams.REOPENED] if reopens else [])


def test_the_second_reopening_flags_the_ticket_for_supervision_and_carries_the_history() -> None:
    state = dispatched_state()
    reopened: list[TicketReopened] = []
    for survey_round in (1, 2):
        state = after(state, on_updated(updated("resolve", T0, n=survey_round), state, POLICY))
        effects = on_answered(answered(False, 2, survey_round), state, POLICY)
        state = after(state, effects)
        event = effects.publish[0].event
        assert isinstance(event, TicketReopened)
        reopened.append(event)
    first, second = reopened
    assert (first.reopen_count, first.supervision, second.reopen_count, second.supervision) == (
        1,
        False,
        2,
        True,
    )
    assert [h.survey_round for h in second.history] == [1, 2]
    assert second.history[0].comment == "还是没修好" and second.department == "water"
    assert first.event_id != second.event_id
    assert state.eval_supervision and state.eval_reopen_count == 2
    assert any(isinstance(op, SortedAdd) and op.key == "hotline:supervision" for op in after_ops(effects))


def after_ops(effects: Effects) -> list[Op]:
    return [op for w in effects.writes for op in w.ops]


def test_an_answer_is_counted_once_per_round() -> None:
    state = after(dispatched_state(), on_updated(updated("resolve", T0), dispatched_state(), POLICY))
    state = after(state, on_answered(answered(True, 5), state, POLICY))
    assert on_answered(answered(True, 5), state, POLICY).writes == ()


async def test_a_batch_threads_state_so_accept_then_resolve_counts_one_response() -> None:
    start = dispatched_state()

    async def load(ids: list[str]) -> dict[str, TicketState]:
        return {i: start for i in ids}

    batch = with_state(load, on_updated, POLICY)
    out = await batch(
        [updated("accept", T0 + timedelta(minutes=5)), updated("resolve", T0 + timedelta(minutes=9))]
    )
    assert [measures(e)["responded"] for e in out] == [2, 0]


# -- the survey answer and outbound retries ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "score"), [("满意", 5), ("基本满意", 4), ("不满意", 2), (3, 3), (" 满意 ", 5)]
)
def test_satisfaction_words_map_onto_the_scale(given: object, score: int) -> None:
    assert (
        SurveyAnswer.model_validate({"ticket_id": "T1", "resolved": True, "satisfaction": given}).satisfaction
        == score
    )


@pytest.mark.parametrize("given", ["很好", 0, 6, None])
def test_other_satisfaction_values_are_refused(given: object) -> None:
    with pytest.raises(ValidationError):
        SurveyAnswer.model_validate({"ticket_id": "T1", "resolved": True, "satisfaction": given})


def test_backoff_is_jittered_under_a_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    waits = [[policy.backoff(attempt, rng) for _ in range(200)] for attempt in (1, 2, 3, 6)]
    assert [cap / 2 <= min(w) and max(w) <= cap for w, cap in zip(waits, (1, 2, 4, 8), strict=True)] == [
        True
    ] * 4
    assert max(waits[3]) - min(waits[3]) > 2  # spread out, not synchronised


def test_the_report_never_shows_a_rate_above_100_percent() -> None:
    """A unit far above its peers was shown "100.0% / 137.7%": its rate stays a share of cases, and how far
    above expectation it is reads as the observed/expected ratio beside it."""
    rows = {
        ("top", "hard"): {"dispatched": 40, "evaluated": 40, "resolved": 40, "satisfied": 40, "rated": 40},
        ("peer", "hard"): {"dispatched": 60, "evaluated": 60, "resolved": 20, "satisfied": 20, "rated": 60},
        ("peer", "easy"): {"dispatched": 60, "evaluated": 60, "resolved": 50, "satisfied": 50, "rated": 60},
    }
    month = board(table(rows), "month", "2026-11", min_volume=20)
    top = next(u for u in month.units["department"] if u.unit == "top").rates["satisfaction"]
    assert top.raw == 1.0 and top.ratio is not None and top.ratio > 1.3 and top.rank == 1
    html = render_html(MonthReport(month="2026-11", month_board=month, days=[month]))
    shown = [float(p) for p in re.findall(r"(\d+(?:\.\d+)?)%", html)]
    assert shown and max(shown) <= 100.0
    assert f"100.0% · {top.ratio:.2f} (1)" in html and "observed" in html
    [row] = [r for r in csv_rows(MonthReport("2026-11", month, [])) if r["unit"] == "top"]
    assert row["satisfaction_ratio"] == pytest.approx(top.ratio) and "satisfaction_adjusted" not in row
