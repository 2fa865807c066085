"""Insight's background work on problems, each pass (on the replica holding the lease):

1. apply supervisors' actions recorded by intake;
2. attach the new tickets to their problems, or count them towards one (a problem is detected at
   `detect_repeats`), and make a problem of every open surge episode;
3. act where the policy says so: a proactive work order through intake's accept path;
4. follow each work order: resolved, the problem is resolved; then evaluated (hourly), and reopened when
   its calls come back;
5. commit the changed problems with their events in one transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from redis.asyncio import Redis

from services.insight import places, state
from services.insight.chronic import Candidate
from services.insight.problem_store import (
    Known,
    actioned_event,
    commit,
    load_known,
    open_work_order,
    take_actions,
    version,
)
from services.insight.problems import (
    Evaluation,
    Problem,
    ProblemPolicy,
    Sighting,
    action_rule,
    evaluate,
    observe,
    place_problem_key,
    problem_id,
    series_problem_key,
    surge_rule,
)
from services.insight.surge import Episode
from shared import streams
from shared.events import Event, ProblemDetected, ProblemEvaluated
from shared.status import CLOSED
from shared.store import Ticket, TicketStore

log = logging.getLogger("hotline.insight.problems")


@dataclass(frozen=True)
class PassResult:
    detected: int
    actioned: int
    reopened: int
    verdicts: dict[str, int]


def sightings_of(
    tickets: Iterable[Ticket], surging: dict[str, Episode], named: Mapping[str, list[places.Place]]
) -> list[Sighting]:
    """Each ticket that names a place becomes a sighting of its place and topic; each one in a surging
    series (since the episode began) a sighting of that series. `named`: the places of the tickets
    found already (by the clusterer), by ticket id."""
    out = []
    for t in tickets:
        # A work order is the city's own ticket about a problem, not one more call about it.
        if t.category is None or t.received_at is None or t.channel == "proactive":
            continue
        found = named.get(t.ticket_id)
        if found is None:
            found = places.places_of(t.title or "", t.text or "")
        place = places.key(found)
        label = (t.title or t.text or "")[:60]
        if place is not None:
            key = place_problem_key(place, t.category)
            out.append(Sighting(t.ticket_id, t.received_at, key, t.category, t.district, place, label))
        series = state.series_key(t.category, t.district)
        episode = surging.get(series)
        if episode is not None and state.hour_index(t.received_at) >= episode.start_hour:
            key = series_problem_key(t.category, t.district)
            out.append(Sighting(t.ticket_id, t.received_at, key, t.category, t.district, None, label))
    return out


class ProblemPass:
    """The pass keeps the problems and pending tallies its last commit left between passes: a pass reads
    and parses them all only when another replica (or an earlier holder of the lease) committed since, or
    when a supervisor acts on a problem they lack.
    Reading them on every pass cost a pass more as problems accumulated (each holds up to `KEEP_MEMBERS`
    ticket ids), while its own work is the tickets that came since the last one."""

    def __init__(self, redis: Redis, policy: ProblemPolicy, maxlen: int, cooldown_hours: int) -> None:
        self.redis = redis
        self.cooldown_hours = cooldown_hours
        self.policy = policy
        self.maxlen = maxlen
        self.store = TicketStore(redis)
        self._known: Known | None = None

    async def _take(self, named: Iterable[str] = ()) -> Known:
        """The problems as the last commit left them, read again when another committed since or when it
        lacks one `named` (a supervisor's action on a problem written by something other than a pass).
        Taken, not shared: a pass that fails after changing them in place leaves nothing behind."""
        known, self._known = self._known, None
        if (
            known is None
            or known.version != await version(self.redis)
            or any(p not in known.problems for p in named)
        ):
            known = await load_known(self.redis)
        return known

    async def _commit(
        self,
        known: Known,
        changed: Iterable[Problem],
        pending: Iterable[str],
        events: list[tuple[str, Event]],
        done_actions: Iterable[str] = (),
    ) -> None:
        tallies = {k: known.pending.get(k) for k in pending}
        made = await commit(self.redis, changed, tallies, events, self.maxlen, done_actions)
        if made == known.version + 1:  # nobody else committed since it was read: it is still whole
            known.version = made
            self._known = known

    async def run(
        self,
        now: datetime,
        tickets: Sequence[Ticket],
        episodes: Sequence[Episode],
        evaluate_now: bool,
        named: Mapping[str, list[places.Place]] | None = None,
    ) -> PassResult:
        """One pass over the `tickets` that came since the last (`named`: the places of those found
        already, by ticket id)."""
        actions = await take_actions(self.redis)
        known = await self._take(a.problem_id for a in actions)
        problems, pending = known.problems, known.pending
        changed: dict[str, Problem] = {}
        events: list[tuple[str, Event]] = []
        for action in actions:
            p = problems.get(action.problem_id)
            if p is not None and p.open_for_action and p.round == action.round:
                self._actioned(p, action.ticket_id, action.by, action.at)
                changed[p.problem_id] = p

        hour = state.hour_index(now)
        surging = {e.series: e for e in episodes if e.is_open(hour, self.cooldown_hours)}
        for series, episode in surging.items():
            category, district = state.split_series(series)
            key = series_problem_key(category, district)
            pid = problem_id(key)
            if pid not in problems:
                problems[pid] = Problem(
                    problem_id=pid,
                    key=key,
                    category=category,
                    district=district,
                    label=f"surge of {category} in {district or 'the city'}",
                    first_seen=state.hour_start(episode.start_hour),
                    last_seen=state.hour_start(episode.last_hour),
                    evidence=[
                        f"surge: {episode.peak_count} tickets where {episode.expected:.1f} were expected "
                        f"(p={episode.probability:.2g})"
                    ],
                )
                changed[pid] = problems[pid]
                events.append((streams.PROBLEMS_DETECTED, self._detected(problems[pid], now)))
        changes = observe(problems, pending, sightings_of(tickets, surging, named or {}), self.policy)
        for p in changes.detected:
            events.append((streams.PROBLEMS_DETECTED, self._detected(p, now)))
        for p in [*changes.detected, *changes.attached, *changes.reopened]:
            changed[p.problem_id] = p
        verdicts: dict[str, int] = {}
        for p in changes.reopened:
            if p.evaluation is None or p.evaluation.verdict == "too early":
                # The calls came back before the evaluation was due: the round had no effect.
                found = evaluate(p, now, self.policy, {}, {})
                if found is not None:
                    self._evaluated(
                        p, found.model_copy(update={"verdict": "no effect"}), now, events, verdicts
                    )
            p.history = [*p.history, *([p.evaluation] if p.evaluation else [])]
            p.evaluation = None
            p.round += 1
            p.proactive_ticket_id = None

        actioned = 0
        for p in problems.values():
            rule = action_rule(p, self.policy, now)
            surge = (
                surging.get(state.series_key(p.category, p.district)) if p.key.startswith("series:") else None
            )
            if rule is None and surge is not None and p.open_for_action:
                rule = surge_rule(surge.peak_count, surge.expected, self.policy)
            if rule is None:
                continue
            ticket_id = await open_work_order(self.redis, p, rule, now, self.maxlen)
            self._actioned(p, ticket_id, rule, now)
            events.append((streams.PROBLEMS_ACTIONED, actioned_event(p, rule, ticket_id, now)))
            changed[p.problem_id] = p
            actioned += 1

        await self._follow(problems, changed, now)
        if evaluate_now:
            await self._evaluate(problems, changed, events, now, verdicts)
        await self._commit(known, changed.values(), changes.pending, events, [a.problem_id for a in actions])
        detected = sum(s == streams.PROBLEMS_DETECTED for s, _ in events)
        return PassResult(detected, actioned, len(changes.reopened), verdicts)

    def _actioned(self, p: Problem, ticket_id: str, by: str, at: datetime) -> None:
        p.status = "actioned"
        p.proactive_ticket_id = ticket_id
        p.actioned_at = at
        p.actioned_by = by
        p.resolved_at = None
        p.returned = []

    async def adopt(self, candidates: Sequence[Candidate], now: datetime) -> int:
        """每月一题 candidates become problems (or grow the one they already are); returns how many are new.

        A candidate naming a place is that place's problem; one that names none (a policy question asked
        across the city) is matched to an earlier one by sharing half its tickets, else keyed by its first."""
        known = await self._take()
        problems = known.problems
        changed: dict[str, Problem] = {}
        created: list[Problem] = []
        for c in candidates:
            found = await self.store.get_many(c.ticket_ids, fields=("category", "received_at", "district"))
            members = [t for t in found if t is not None and t.category and t.received_at]
            if not members:
                continue
            categories = [t.category for t in members if t.category is not None]
            category = Counter(categories).most_common(1)[0][0]
            district = Counter(t.district for t in members).most_common(1)[0][0]
            place = places.key(places.places_of(c.label, ""))
            if place is not None:
                key = place_problem_key(place, category)
            else:
                ids = set(c.ticket_ids)
                same = [
                    p.key
                    for p in problems.values()
                    if p.key.startswith("chronic:") and len(ids & set(p.ticket_ids)) * 2 >= len(ids)
                ]
                key = same[0] if same else f"chronic:{c.ticket_ids[0]}"
            pid = problem_id(key)
            problem = problems.get(pid)
            evidence = (
                f"每月一题 candidate {now:%Y-%m}: {c.tickets} tickets in {c.active_weeks}/{c.weeks} weeks, "
                f"score {c.score:.2f}"
            )
            if problem is None:
                problem = Problem(
                    problem_id=pid,
                    key=key,
                    category=category,
                    district=district,
                    place=place,
                    label=c.label,
                    first_seen=c.first,
                    last_seen=c.first,
                )
                problems[pid] = problem
                created.append(problem)
            grew = [problem.attach(t.ticket_id, t.received_at) for t in members if t.received_at]
            if evidence not in problem.evidence:
                problem.evidence.append(evidence)
                grew.append(True)
            if any(grew):
                changed[pid] = problem
        events: list[tuple[str, Event]] = [
            (streams.PROBLEMS_DETECTED, self._detected(p, now)) for p in created
        ]
        await self._commit(known, changed.values(), (), events)
        return len(created)

    async def _follow(self, problems: dict[str, Problem], changed: dict[str, Problem], now: datetime) -> None:
        """A problem whose work order is resolved is resolved (reopening the order reopens nothing: the
        calls decide that)."""
        waiting = [p for p in problems.values() if p.status == "actioned" and p.proactive_ticket_id]
        found = await self.store.get_many(
            [p.proactive_ticket_id for p in waiting if p.proactive_ticket_id], fields=("status", "updated_at")
        )
        for p, ticket in zip(waiting, found, strict=True):
            if ticket is not None and ticket.status in CLOSED:
                p.status = "resolved"
                p.resolved_at = ticket.updated_at or now
                changed[p.problem_id] = p

    async def _evaluate(
        self,
        problems: dict[str, Problem],
        changed: dict[str, Problem],
        events: list[tuple[str, Event]],
        now: datetime,
        verdicts: dict[str, int],
    ) -> None:
        """Evaluate the resolved problems, counting each final verdict in `verdicts`."""
        due = [p for p in problems.values() if p.status == "resolved" and p.actioned_at and p.resolved_at]
        if not due:
            return
        first = min(min((date.fromisoformat(d) for d in p.daily), default=now.date()) for p in due)
        daily = await state.load_daily(self.redis, first - timedelta(days=7), now.date())
        for p in due:
            before, after = _control(daily, p)
            result = evaluate(p, now, self.policy, before, after)
            if result is None:
                continue
            p.evaluation = result
            changed[p.problem_id] = p
            if result.verdict == "too early":
                continue
            p.status = "evaluated"
            self._evaluated(p, result, now, events, verdicts)

    def _evaluated(
        self,
        p: Problem,
        result: Evaluation,
        now: datetime,
        events: list[tuple[str, Event]],
        verdicts: dict[str, int],
    ) -> None:
        p.evaluation = result
        verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
        fields = p.event_fields("evaluated", now) | {"status": "evaluated"}
        evaluation = result.model_dump(exclude={"at"})
        proactive = p.proactive_ticket_id or ""
        event = ProblemEvaluated(**fields, **evaluation, round=p.round, proactive_ticket_id=proactive)
        events.append((streams.PROBLEMS_EVALUATED, event))
        log.info("problem %s evaluated: %s (%s)", p.problem_id, result.verdict, p.label)

    def _detected(self, p: Problem, now: datetime) -> ProblemDetected:
        return ProblemDetected(**p.event_fields("detected", now), evidence="; ".join(p.evidence))


def _control(daily: dict[str, dict[date, int]], p: Problem) -> tuple[dict[date, int], dict[date, int]]:
    """The same category in the other districts: untreated, and exposed to what moves the whole category
    (season, weather, news). Returns its daily counts (before and after are read from one map)."""
    totals: dict[date, int] = {}
    for series, counts in daily.items():
        category, district = state.split_series(series)
        if category != p.category or district == p.district:
            continue
        for d, n in counts.items():
            totals[d] = totals.get(d, 0) + n
    return totals, totals
