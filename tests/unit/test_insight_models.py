"""Insight's domain modules on synthetic data: surges, clusters, forecasts, 每月一题 ranking, handlers."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from services.insight.chronic import Problem, rank
from services.insight.clusters import ClusterConfig, Clusterer, Message
from services.insight.forecast import backtest, forecast, seasonal_naive
from services.insight.handlers import Prepared, on_classified
from services.insight.surge import SurgeConfig, SurgeDetector, fit, replay, tail_probability
from services.insight.synthetic import InjectedSurge, background, inject
from shared import streams
from shared.effects import Increment
from shared.events import HotspotAlert, Place, TicketClassified

CONFIG = SurgeConfig()
DAYS = 49
WARM = 28


def test_tail_probability_matches_poisson_when_dispersion_vanishes() -> None:
    # P(X >= 3) for Poisson(1) = 1 - e^-1 (1 + 1 + 1/2)
    assert tail_probability(3, 1.0, 1e9) == pytest.approx(1 - np.exp(-1) * 2.5, rel=1e-6)
    assert tail_probability(0, 1.0, 5.0) == 1.0
    assert tail_probability(10, 1.0, 1.0) > tail_probability(10, 1.0, 100.0), (
        "overdispersion fattens the tail"
    )


def test_pure_background_stays_within_the_false_alarm_bound() -> None:
    counts = background(24, DAYS, seed=11)
    surges = replay(counts, 0, CONFIG, WARM)
    per_day = len(surges) / (DAYS - WARM)
    assert per_day <= CONFIG.false_alarms_per_day, [s.episode for s in surges]


def test_a_surge_is_detected_within_three_hours() -> None:
    counts = background(24, DAYS, seed=12)
    series = "cat3|D0"
    start = (DAYS - 5) * 24 + 9  # 09:00 on a weekday
    per_hour = counts[series][start - 7 * 24 : start - 6 * 24].mean()
    surge = InjectedSurge(series, start, hours=3, extra=int(6 * 3 * max(per_hour, 1.0)) + 6)
    found = [
        s for s in replay(inject(counts, [surge], seed=1), 0, CONFIG, WARM) if s.episode.series == series
    ]
    hits = [s for s in found if start <= s.episode.start_hour < start + 24]
    assert hits, "the injected surge was missed"
    assert hits[0].episode.start_hour - start <= 3
    assert hits[0].breach.count > hits[0].breach.expected


def test_one_alert_per_episode_however_long_the_surge() -> None:
    counts = background(12, 40, seed=13)
    series = "cat5|D0"
    start = 35 * 24 + 8
    long = InjectedSurge(series, start, hours=12, extra=300)
    found = [s for s in replay(inject(counts, [long], seed=2), 0, CONFIG, WARM) if s.episode.series == series]
    assert len([s for s in found if start <= s.episode.start_hour < start + 12 + CONFIG.cooldown_hours]) == 1


def test_no_alerts_while_the_history_is_too_short() -> None:
    detector = SurgeDetector(fit({}, 0, CONFIG, days_of_history=2))
    assert not detector.baseline.warm
    assert all(detector.observe("a|b", 100)[0] is None for _ in range(50))


def test_the_bonferroni_threshold_scales_with_the_number_of_series() -> None:
    small = fit({f"s{i}": np.ones(24 * 14, dtype=np.int64) for i in range(2)}, 0, CONFIG, 14)
    large = fit({f"s{i}": np.ones(24 * 14, dtype=np.int64) for i in range(20)}, 0, CONFIG, 14)
    assert small.alpha_per_test() == pytest.approx(CONFIG.false_alarms_per_day / (24 * 3 * 2))
    assert large.alpha_per_test() == pytest.approx(small.alpha_per_test() / 10)


def ticket(n: int, at: datetime) -> TicketClassified:
    return TicketClassified(
        event_id=f"e{n}",
        ticket_id=f"T{n}",
        occurred_at=at,
        category="water",
        confidence=0.9,
        place=Place(district="A1区"),
        model_version="t",
        received_at=at,
    )


def test_handler_counts_every_ticket_and_alerts_once_with_a_stable_id() -> None:
    t0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
    hour0 = int(t0.timestamp() // 3600)
    quiet = {"water|A1区": np.zeros(24 * 14, dtype=np.int64), "roads|A2区": np.ones(24 * 14, dtype=np.int64)}
    baseline = fit(quiet, hour0 - 24 * 14 - 10, CONFIG, 14)
    events = [ticket(i, t0 + timedelta(minutes=i)) for i in range(8)]

    def run() -> list[HotspotAlert]:
        prepared = Prepared(SurgeDetector(baseline), {t0.date(): baseline}, {})
        effects = on_classified(events, prepared)
        assert all(any(isinstance(op, Increment) for op in e.writes[0].ops) for e in effects)
        return [p.event for e in effects for p in e.publish if isinstance(p.event, HotspotAlert)]

    [alert] = run()
    assert alert.count == CONFIG.min_count and alert.district == "A1区" and alert.window_hours == 1
    assert alert.example_tickets[0] == f"T{CONFIG.min_count - 1}"
    assert [a.event_id for a in run()] == [alert.event_id], "a retried batch republishes the same id"
    assert streams.HOTSPOTS


def msg(i: int, title: str, day: int, location: str | None = "A2区", likes: int = 0) -> Message:
    return Message(
        id=str(i),
        title=title,
        text=title + "，请相关部门尽快处理。",
        created_at=datetime(2019, 11, 1) + timedelta(days=day, hours=i % 7),
        location=location,
        likes=likes,
        author=f"u{i}",
    )


ISSUE_A = [
    "丽发新城小区附近搅拌站噪音扰民",
    "投诉丽发新城小区附近搅拌站噪音",
    "丽发新城附近搅拌站噪音严重扰民",
]
ISSUE_B = ["伊景园滨河苑捆绑销售车位", "投诉伊景园滨河苑捆绑销售车位问题", "伊景园滨河苑违规捆绑车位销售"]
NOISE = ["咨询公积金贷款额度问题", "学校门口交通拥堵严重", "建议增加公交线路班次", "社保卡补办流程咨询"]


def test_clusters_group_similar_complaints_and_label_them_from_their_messages() -> None:
    messages = [msg(i, ISSUE_A[i % 3], i) for i in range(9)]
    messages += [msg(100 + i, ISSUE_B[i % 3], i, location="A市") for i in range(6)]
    messages += [msg(200 + i, t, i) for i, t in enumerate(NOISE)]
    messages.sort(key=lambda m: m.created_at)
    clusterer = Clusterer()
    clusterer.add(messages[:7])
    clusterer.add(messages[7:])
    clusterer.add(messages[:3])  # replays change nothing
    clusterer.consolidate()
    issues = clusterer.issues(top=5)
    assert len(issues) == 2, [i.label for i in issues]
    first, second = issues
    assert sorted(first.message_ids, key=int) == [str(i) for i in range(9)]
    assert first.label in ISSUE_A and second.label in ISSUE_B
    assert first.heat > second.heat and first.start < first.end
    assert any("搅拌" in k for k in first.keywords)


def test_the_same_complaint_in_two_districts_is_two_issues() -> None:
    messages = [msg(i, "小区门口垃圾站臭味严重", i, location=f"A{1 + i % 2}区") for i in range(6)]
    clusterer = Clusterer()
    clusterer.add(messages)
    issues = clusterer.issues()
    assert sorted(i.district or "" for i in issues) == ["A1区", "A2区"]


def test_heat_favours_liked_and_recent_issues() -> None:
    clusterer = Clusterer()
    old = [msg(i, ISSUE_A[i % 3], i) for i in range(3)]
    new = [msg(10 + i, ISSUE_B[i % 3], 40 + i, likes=50) for i in range(3)]
    clusterer.add(old + new)
    now = datetime(2019, 11, 1) + timedelta(days=45)
    assert clusterer.issues(now=now)[0].label in ISSUE_B


def weekly_series(weeks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = np.array([14, 16, 15, 14, 13, 6, 5], dtype=float)
    trend = np.linspace(1.0, 1.3, weeks * 7)
    return rng.poisson(np.tile(shape, weeks) * trend).astype(float)


def test_seasonal_naive_repeats_last_week() -> None:
    y = np.arange(21, dtype=float)
    assert list(seasonal_naive(y, 7)) == list(y[-7:])


def test_holt_winters_beats_seasonal_naive_on_noisy_weekly_counts() -> None:
    bt = backtest(weekly_series(20, seed=3))
    assert bt is not None and bt.origins == 8
    assert bt.model_mae < bt.naive_mae and bt.skill > 0


def test_forecast_has_seven_days_and_an_interval_around_the_point() -> None:
    fc = forecast(list(weekly_series(16, seed=4)), date(2026, 11, 1))
    assert fc.days[0] == date(2026, 11, 2) and len(fc.point) == 7
    assert all(lo <= p <= hi for lo, p, hi in zip(fc.lower, fc.point, fc.upper, strict=True))
    assert fc.point[5] < fc.point[1], "weekends are quieter"
    short = forecast([3.0, 4.0], date(2026, 11, 1))
    assert short.backtest is None and len(short.point) == 7


def test_chronic_problems_outrank_one_off_bursts() -> None:
    base = datetime(2019, 9, 2)
    chronic = Problem("c", "every week", [base + timedelta(weeks=w, days=1) for w in range(13)])
    burst = Problem("b", "one week", [base + timedelta(weeks=12, hours=h) for h in range(40)])
    rare = Problem("r", "twice", [base + timedelta(weeks=12), base + timedelta(weeks=2)])
    out = rank([burst, chronic, rare], 2019, 11)
    assert [c.key for c in out] == ["c", "b"] or [c.key for c in out] == ["c"]
    assert out[0].active_weeks >= 10 and out[0].peak_week_share < 0.2
    assert rank([chronic], 2018, 1) == [], "nothing in that month"


def test_a_cluster_matches_on_everything_its_members_said() -> None:
    """A message like the second member but not the first joins: the centroid grew between batches."""
    first, second, third = (
        "丽发新城小区附近搅拌站噪音扰民",
        "丽发新城小区附近搅拌站夜间施工噪音扰民",
        "夜间施工噪音扰民",
    )
    alone = Clusterer()
    alone.add([msg(1, first, 0)])
    alone.add([msg(3, third, 2)])
    assert len(alone.clusters) == 2, "the third message alone is too far from the first"
    clusterer = Clusterer()
    for i, title in enumerate((first, second, third), start=1):
        clusterer.add([msg(i, title, i - 1)])
    [cluster] = clusterer.clusters.values()
    assert [m.id for m in cluster.members] == ["1", "2", "3"]


def test_a_merged_cluster_matches_on_what_both_halves_said() -> None:
    noise, dust = "丽发新城小区搅拌站噪音扰民", "丽发新城小区搅拌站粉尘污染"
    clusterer = Clusterer(ClusterConfig(threshold=0.7, merge_threshold=0.3, place_threshold=0.7))
    clusterer.add([msg(1, noise, 0), msg(2, noise, 1)])
    clusterer.add([msg(3, dust, 2), msg(4, dust, 3)])
    assert len(clusterer.clusters) == 2, "noise and dust are too far apart to join one by one"
    assert clusterer.consolidate() == 1
    clusterer.add([msg(5, dust, 4)])
    [cluster] = clusterer.clusters.values()
    assert [m.id for m in cluster.members] == ["1", "2", "3", "4", "5"]
    assert cluster.end == msg(5, dust, 4).created_at


def test_a_late_message_does_not_move_a_cluster_back_in_time() -> None:
    clusterer = Clusterer()
    clusterer.add([msg(1, ISSUE_A[0], 10)])
    clusterer.add([msg(2, ISSUE_A[1], 2)])  # stored late: an earlier call, added after
    [issue] = clusterer.issues()
    assert issue.start == msg(2, ISSUE_A[1], 2).created_at and issue.end == msg(1, ISSUE_A[0], 10).created_at
    assert clusterer.prune(msg(1, ISSUE_A[0], 10).created_at) == 0, "its last message is still recent"


def test_an_issue_heats_up_as_messages_join_between_refreshes() -> None:
    clusterer = Clusterer()
    clusterer.add([msg(i, ISSUE_A[i % 3], i) for i in range(2)])
    [before] = clusterer.issues()
    clusterer.add([msg(2, ISSUE_A[2], 2, likes=40)])
    [after] = clusterer.issues()
    assert len(after.message_ids) == 3 and after.likes == 40 and after.heat > 2 * before.heat
    assert (after.start, after.end) == (msg(0, "", 0).created_at, msg(2, "", 2).created_at)


def test_among_many_clusters_a_message_joins_the_latest_of_equally_close_ones_and_matches_their_growth() -> (
    None
):
    rng = np.random.default_rng(3)
    noise = ["".join(chr(0x4E00 + int(c)) for c in rng.integers(0, 20_000, 12)) for _ in range(400)]
    first, second, third = (
        "丽发新城小区附近搅拌站噪音扰民",
        "丽发新城小区附近搅拌站夜间施工噪音扰民",
        "夜间施工噪音扰民",
    )
    clusterer = Clusterer()
    clusterer.add(
        [msg(i, t, 0, location=None) for i, t in enumerate(noise)]
        + [msg(1000, first, 1, location="A1区"), msg(1001, first, 1, location="A2区")]
    )
    clusterer.add([msg(1002, noise[7], 2, location=None)])
    assert clusterer._index.ids, "enough clusters for them to be compared as one matrix"
    clusterer.add([msg(1003, first, 3, location=None)])  # as close to both: the later cluster wins
    clusterer.add([msg(1004, second, 4, location="A2区")])
    clusterer.add([msg(1005, third, 5, location="A2区")])
    by_member = {m.id: c.id for c in clusterer.clusters.values() for m in c.members}
    assert by_member["1002"] == by_member["7"]
    assert (
        by_member["1000"] != by_member["1001"] == by_member["1003"] == by_member["1004"] == by_member["1005"]
    )


def test_issues_labelled_pass_after_pass_read_only_new_members_and_match_a_fresh_labelling() -> None:
    """Each pass labels the hottest issues from what it kept of the last one plus the members that joined
    since (hot issues keep growing): the same labels and keywords as labelling everything anew, through
    joins, a merge and a prune."""
    messages = [msg(i, ISSUE_A[i % 3], i // 3) for i in range(12)]
    messages += [msg(100 + i, ISSUE_B[i % 3], i // 3, location="A市") for i in range(9)]
    messages += [msg(200 + i, t, i) for i, t in enumerate(NOISE)]
    messages.sort(key=lambda m: m.created_at)
    passes, fresh = Clusterer(), Clusterer()
    for start in range(0, len(messages), 5):
        for clusterer in (passes, fresh):
            clusterer.add(messages[start : start + 5])
        labelled = passes.issues(top=3)
        assert labelled == fresh.issues(top=3) and len(passes._labelling) <= 3
        fresh._labelling = {}  # forget: the next pass labels everything anew
        if start == 10:
            assert passes.consolidate() == fresh.consolidate()
    assert passes.prune(messages[-1].created_at - timedelta(days=2)) > 0
    fresh.prune(messages[-1].created_at - timedelta(days=2))
    assert passes.issues() == fresh.issues() and passes.labelled(2) == fresh.labelled(2)
    assert set(passes._labelling) <= set(passes.clusters)
    read: list[int] = []
    vectors = passes._vectors_readonly
    passes._vectors_readonly = lambda ms: read.append(len(ms)) or vectors(ms)  # type: ignore[method-assign]
    passes.labelled(2)
    assert read == [], "no message joined since: no member is read again"


def test_a_clusters_heat_is_counted_as_messages_join_and_is_what_its_members_make() -> None:
    clusterer = Clusterer(ClusterConfig(threshold=0.7, merge_threshold=0.3, place_threshold=0.7))
    noise, dust = "丽发新城小区搅拌站噪音扰民", "丽发新城小区搅拌站粉尘污染"
    clusterer.add([msg(1, noise, 0, likes=3), msg(2, noise, 9, likes=-1)])
    clusterer.add([msg(3, dust, 10, likes=40), msg(3, dust, 10, likes=40), msg(4, dust, 11)])
    clusterer.consolidate()
    clusterer.add([msg(5, dust, 30)])
    [cluster] = clusterer.clusters.values()  # merged, then joined
    members = cluster.members
    authors = {m.author or m.id for m in members}
    weeks = Counter(int(m.created_at.timestamp() // (7 * 86400)) for m in members)
    volume = len(authors) + 0.5 * (len(members) - len(authors))
    likes = sum(max(0, m.likes) for m in members)
    expected = volume * (1 + math.log10(1 + likes)) * math.sqrt(max(weeks.values()) / len(members))
    [issue] = clusterer.issues()
    assert issue.heat == expected and (issue.likes, issue.authors) == (likes, len(authors)) == (83, 5)
