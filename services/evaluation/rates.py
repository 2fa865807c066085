"""The 三率: counters per unit and window, the three rates, and a ranking adjusted for case mix.

Counters live in one hash per window bucket (`hotline:rates:{window}:{bucket}`, windows day `2026-11-28`,
ISO week `2026-W48`, month `2026-11`, in the city's time zone), one field per
`{dimension}|{unit}|{category}|{measure}` for dimension department and district. Keeping the category in
every field is what the case-mix adjustment needs; category and city figures are sums of the department
rows. Counters are only ever changed by `StoreWrite` ops, which run once per event.

Case mix (indirect standardisation): a unit's expected count is what it would have scored at the rate
the other units achieve in each of its own categories, E = Σ_c n_c · p_c(others), each p_c shrunk towards
the city's rate by `PRIOR_CASES` pseudo-cases. Its standardised ratio is observed / E (1 = as expected for
its case mix, 1.2 = 20% more than expected), and units are ranked by it, so a unit that gets the hardest
categories is compared with what those categories usually achieve, not with the easy ones of its
neighbours. The ratio is shown beside the raw rate, never as a rate: scaled back to a percentage (ratio ·
the city's rate) it would pass 100% for a unit far above its peers. A category no other unit handles
carries no information about difficulty: its benchmark is the city's rate, which leaves that part of the
unit unadjusted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Literal, get_args

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.bus import as_str
from shared.effects import Increment, Op
from shared.store import keys

Window = Literal["day", "week", "month"]
WINDOWS: tuple[Window, ...] = get_args(Window)
Dimension = Literal["department", "district", "category"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
STORED: tuple[Dimension, ...] = ("department", "district")
Measure = Literal[
    "dispatched",  # a dispatch to a department (each re-dispatch counts again)
    "responded",  # ... that the department signed for (accepted or resolved) by the dispatch deadline
    "surveyed",  # a survey sent (or left for a callback when no gateway is configured)
    "undelivered",  # a survey the gateway did not take after every retry
    "evaluated",  # a survey answered
    "resolved",  # ... where the citizen says the problem is resolved
    "rated",  # ... with a satisfaction score
    "satisfied",  # ... of 满意 or 基本满意 (4 or 5)
    "unevaluated",  # a survey with no answer within the window
    "reopened",  # a ticket sent back to dispatch after its survey
]
MEASURES: tuple[Measure, ...] = get_args(Measure)
RateName = Literal["response", "resolution", "satisfaction"]
RATE_NAMES: tuple[RateName, ...] = get_args(RateName)
# (numerator, denominator) of each rate; the README defines them in one sentence each.
RATES: dict[RateName, tuple[Measure, Measure]] = {
    "response": ("responded", "dispatched"),
    "resolution": ("resolved", "evaluated"),
    "satisfaction": ("satisfied", "rated"),
}
UNKNOWN = "unknown"
CITY = "city"
PRIOR_CASES = 5


@dataclass(frozen=True)
class Units:
    """Where one ticket's outcome is counted."""

    department: str
    district: str
    category: str

    @classmethod
    def of(cls, department: str | None, district: str | None, category: str | None) -> Units:
        return cls(_unit(department), _unit(district), _unit(category))

    def of_dimension(self, dimension: Dimension) -> str:
        return str(getattr(self, dimension))


def _unit(value: str | None) -> str:
    # "|" separates the parts of a counter field.
    return (value or "").strip().replace("|", "/") or UNKNOWN


def bucket_of(window: Window, at: datetime, tz: tzinfo) -> str:
    local = at.astimezone(tz)
    if window == "day":
        return local.strftime("%Y-%m-%d")
    if window == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")


def check_bucket(window: Window, bucket: str) -> str:
    """`bucket` if it is a well-formed bucket of `window`; ValueError otherwise."""
    formats = {"day": "%Y-%m-%d", "week": "%G-W%V-%u", "month": "%Y-%m"}
    try:
        parsed = datetime.strptime(f"{bucket}-1" if window == "week" else bucket, formats[window])
    except ValueError:
        parsed = None
    if parsed is None or bucket_of(window, parsed.replace(tzinfo=UTC), UTC) != bucket:
        raise ValueError(f"{bucket!r} is not a {window} (e.g. {_EXAMPLES[window]})")
    return bucket


_EXAMPLES = {"day": "2026-11-28", "week": "2026-W48", "month": "2026-11"}


def count(units: Units, measure: Measure, at: datetime, tz: tzinfo, by: int = 1) -> list[Op]:
    """The StoreWrite ops that add `by` to `measure` for these units in the day, week and month of `at`."""
    ops: list[Op] = []
    for window in WINDOWS:
        key = keys.rates(window, bucket_of(window, at, tz))
        for dimension in STORED:
            field = f"{dimension}|{units.of_dimension(dimension)}|{units.category}|{measure}"
            ops.append(Increment(key, field, by))
    return ops


Cell = tuple[str, str]  # (unit, category)


@dataclass
class Table:
    """One window bucket's counters: (dimension, unit, category) -> measure -> count."""

    cells: dict[tuple[str, str, str], Counter[str]] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, raw: Mapping[bytes | str, bytes | str]) -> Table:
        table = cls()
        for k, v in raw.items():
            parts = as_str(k).split("|")
            if len(parts) != 4 or parts[0] not in STORED or parts[3] not in MEASURES:
                continue  # a field this build does not know: ignored, like unknown event fields
            table.cells.setdefault((parts[0], parts[1], parts[2]), Counter())[parts[3]] += int(as_str(v))
        return table

    def by_category(self, dimension: Dimension) -> dict[Cell, Counter[str]]:
        """Counts per (unit, category) of `dimension`; for `category` itself the unit is the category."""
        source = "department" if dimension == "category" else dimension
        out: dict[Cell, Counter[str]] = {}
        for (dim, unit, category), counts in self.cells.items():
            if dim != source:
                continue
            cell = (category, category) if dimension == "category" else (unit, category)
            out.setdefault(cell, Counter()).update(counts)
        return out

    def city(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_category("category").values():
            total.update(counts)
        return total


class RateFigure(BaseModel):
    numerator: int
    denominator: int
    raw: float | None
    expected: float | None = None
    ratio: float | None = None  # observed / expected: the indirectly standardised ratio
    rank: int | None = None


class UnitReport(BaseModel):
    dimension: str
    unit: str
    counts: dict[str, int]
    rates: dict[str, RateFigure]
    ranked: bool


def standardise(
    cells: Mapping[Cell, Mapping[str, int]], rate: RateName, *, adjust: bool = True
) -> dict[str, RateFigure]:
    """Raw rate and standardised ratio (observed / expected) of each unit (indirect standardisation
    over categories). With `adjust` off (a category is its own case mix) there is no ratio."""
    num_m, den_m = RATES[rate]
    per_category: dict[str, list[int]] = {}
    for (_, category), c in cells.items():
        acc = per_category.setdefault(category, [0, 0])
        acc[0] += c.get(num_m, 0)
        acc[1] += c.get(den_m, 0)
    city_num = sum(n for n, _ in per_category.values())
    city_den = sum(d for _, d in per_category.values())
    city_rate = city_num / city_den if city_den else None

    observed: dict[str, list[float]] = {}  # unit -> [numerator, denominator, expected numerator]
    for (unit, category), c in cells.items():
        row = observed.setdefault(unit, [0, 0, 0.0])
        den = c.get(den_m, 0)
        row[0] += c.get(num_m, 0)
        row[1] += den
        if city_rate is not None:
            # What the *other* units achieve in this category, shrunk towards the city's rate by
            # PRIOR_CASES pseudo-cases: a unit is not its own benchmark, and a category only it handles
            # (nobody to compare with) falls back to the city's rate, i.e. no adjustment.
            cat_num, cat_den = per_category[category]
            others_num, others_den = cat_num - c.get(num_m, 0), cat_den - den
            benchmark = (others_num + PRIOR_CASES * city_rate) / (others_den + PRIOR_CASES)
            row[2] += den * benchmark
    out: dict[str, RateFigure] = {}
    for unit, (observed_num, observed_den, expected) in observed.items():
        ratio = None
        if adjust and observed_den and city_rate is not None:
            # Nothing expected and nothing observed (every category at 0%) is exactly as expected.
            ratio = observed_num / expected if expected else 1.0
        out[unit] = RateFigure(
            numerator=int(observed_num),
            denominator=int(observed_den),
            raw=observed_num / observed_den if observed_den else None,
            expected=expected if observed_den and adjust else None,
            ratio=ratio,
        )
    return out


def rank(figures: Mapping[str, RateFigure], min_volume: int) -> dict[str, RateFigure]:
    """Competition ranking (1, 2, 2, 4) by standardised ratio (by raw rate where there is none: categories)
    among units with at least `min_volume` cases."""

    def score(f: RateFigure) -> float | None:
        value = f.ratio if f.ratio is not None else f.raw
        return None if value is None else round(value, 9)

    eligible = sorted(
        (u for u, f in figures.items() if score(f) is not None and f.denominator >= min_volume),
        key=lambda u: (-(score(figures[u]) or 0.0), -figures[u].denominator, u),
    )
    out = dict(figures)
    previous: float | None = None
    position = 0
    for i, unit in enumerate(eligible, start=1):
        value = score(figures[unit]) or 0.0
        if value != previous:
            position, previous = i, value
        out[unit] = figures[unit].model_copy(update={"rank": position})
    return out


def assess(table: Table, dimension: Dimension, min_volume: int) -> list[UnitReport]:
    """Every unit of `dimension` in the bucket: its counts, and each rate raw, standardised and ranked."""
    cells = table.by_category(dimension)
    adjust = dimension != "category"
    ranked = {r: rank(standardise(cells, r, adjust=adjust), min_volume) for r in RATE_NAMES}
    totals: dict[str, Counter[str]] = {}
    for (unit, _), counts in cells.items():
        totals.setdefault(unit, Counter()).update(counts)
    reports = [
        UnitReport(
            dimension=dimension,
            unit=unit,
            counts={m: totals[unit].get(m, 0) for m in MEASURES},
            rates={r: ranked[r][unit] for r in RATE_NAMES},
            ranked=any(ranked[r][unit].rank is not None for r in RATE_NAMES),
        )
        for unit in totals
    ]
    return sorted(reports, key=lambda r: r.unit)


def city_report(table: Table) -> UnitReport:
    counts = table.city()
    rates = {}
    for r in RATE_NAMES:
        num_m, den_m = RATES[r]
        num, den = counts.get(num_m, 0), counts.get(den_m, 0)
        rates[r] = RateFigure(numerator=num, denominator=den, raw=num / den if den else None)
    return UnitReport(
        dimension=CITY,
        unit=CITY,
        counts={m: counts.get(m, 0) for m in MEASURES},
        rates=rates,
        ranked=False,
    )


async def load_table(redis: Redis, window: Window, bucket: str) -> Table:
    return Table.from_hash(await redis.hgetall(keys.rates(window, bucket)))


async def load_tables(redis: Redis, window: Window, buckets: Iterable[str]) -> dict[str, Table]:
    names = list(buckets)
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in names:
            pipe.hgetall(keys.rates(window, bucket))
        rows = await pipe.execute()
    return {bucket: Table.from_hash(row) for bucket, row in zip(names, rows, strict=True)}


class Board(BaseModel):
    """One window bucket, every dimension: what the API serves and the report prints."""

    window: Window
    bucket: str
    min_volume: int
    city: UnitReport
    units: dict[str, list[UnitReport]]


def board(table: Table, window: Window, bucket: str, min_volume: int) -> Board:
    return Board(
        window=window,
        bucket=bucket,
        min_volume=min_volume,
        city=city_report(table),
        units={d: assess(table, d, min_volume) for d in DIMENSIONS},
    )


class RankingRow(BaseModel):
    rank: int | None
    unit: str
    numerator: int
    denominator: int
    raw: float | None
    expected: float | None
    ratio: float | None


def ranking(reports: Iterable[UnitReport], rate: RateName) -> tuple[list[RankingRow], list[RankingRow]]:
    """(ranked best first, the units below the minimum volume by volume) for one rate."""
    rows = [RankingRow(unit=r.unit, **r.rates[rate].model_dump()) for r in reports]
    ranked = sorted((r for r in rows if r.rank is not None), key=lambda r: (r.rank or 0, r.unit))
    unranked = sorted((r for r in rows if r.rank is None), key=lambda r: (-r.denominator, r.unit))
    return ranked, unranked


def current_buckets(at: datetime, tz: tzinfo) -> dict[Window, str]:
    return {w: bucket_of(w, at, tz) for w in WINDOWS}
