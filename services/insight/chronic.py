"""每月一题 candidates: chronic problems, ranked once a month.

A problem (a cluster of similar complaints at one place, or a category x district series) is *chronic*
when it recurs across many weeks, and a *burst* when most of its tickets fall in one week. For the
`weeks` weeks ending with the month:

    score = (active weeks / weeks) x log(1 + tickets) x (1 - share of the busiest week)

so a problem raised every week for three months outranks one that flared once, however loud, and a
problem seen in fewer than `min_weeks` weeks is not a candidate at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.insight.clusters import Clusterer


@dataclass(frozen=True)
class Problem:
    key: str
    label: str
    times: Sequence[datetime]
    ticket_ids: Sequence[str] = ()


@dataclass(frozen=True)
class Candidate:
    key: str
    label: str
    score: float
    active_weeks: int
    weeks: int
    tickets: int
    peak_week_share: float
    first: datetime
    last: datetime
    ticket_ids: list[str]

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "label": self.label,
            "score": round(self.score, 4),
            "active_weeks": self.active_weeks,
            "weeks": self.weeks,
            "tickets": self.tickets,
            "peak_week_share": round(self.peak_week_share, 3),
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "ticket_ids": self.ticket_ids[:20],
        }


def month_end(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def rank(
    problems: Iterable[Problem], year: int, month: int, *, weeks: int = 12, min_weeks: int = 3
) -> list[Candidate]:
    """Candidates for the month, best first: problems active in the month and recurring before it."""
    end = month_end(year, month)
    start = end - timedelta(weeks=weeks) + timedelta(days=1)
    out = []
    for p in problems:
        ids = [*p.ticket_ids, *[""] * (len(p.times) - len(p.ticket_ids))]
        pairs = sorted(zip(p.times, ids, strict=True), key=lambda ti: ti[0])
        inside = [(t, i) for t, i in pairs if start <= t.date() <= end]
        if not inside or not any(t.year == year and t.month == month for t, _ in inside):
            continue
        by_week: dict[int, int] = {}
        for t, _ in inside:
            w = (t.date() - start).days // 7
            by_week[w] = by_week.get(w, 0) + 1
        if len(by_week) < min_weeks:
            continue
        n = len(inside)
        peak = max(by_week.values()) / n
        score = len(by_week) / weeks * math.log1p(n) * (1.0 - peak)
        out.append(
            Candidate(
                key=p.key,
                label=p.label,
                score=score,
                active_weeks=len(by_week),
                weeks=weeks,
                tickets=n,
                peak_week_share=peak,
                first=inside[0][0],
                last=inside[-1][0],
                ticket_ids=[i for _, i in inside if i],
            )
        )
    out.sort(key=lambda c: (-c.score, c.key))
    return out


def from_clusters(clusterer: Clusterer, min_messages: int = 3) -> list[Problem]:
    """Each cluster of similar complaints (one place, one problem) as a candidate problem."""
    return [
        Problem(
            key=f"cluster-{cid}",
            label=label,
            times=[m.created_at for m in cluster.members],
            ticket_ids=[m.id for m in cluster.members],
        )
        for cid, cluster, label in clusterer.labelled(min_messages=min_messages)
    ]
