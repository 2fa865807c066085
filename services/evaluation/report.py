"""The monthly 三率 report: one self-contained HTML file (inline SVG, no scripts) and a CSV of its numbers."""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from html import escape

from pydantic import BaseModel, ConfigDict, TypeAdapter
from redis.asyncio import Redis

from services.evaluation.rates import (
    DIMENSIONS,
    MEASURES,
    RATE_NAMES,
    Board,
    RateName,
    Table,
    UnitReport,
    board,
    check_bucket,
    load_tables,
)
from services.evaluation.record_rates import daily_tables, summed
from shared.rehydration import RecordReader
from shared.store import keys

RATE_LABELS: dict[RateName, str] = {
    "response": "响应率 response",
    "resolution": "解决率 resolution",
    "satisfaction": "满意率 satisfaction",
}
COLOURS: dict[RateName, str] = {"response": "#1f77b4", "resolution": "#2ca02c", "satisfaction": "#d62728"}
DIMENSION_LABELS = {"department": "Departments", "district": "Districts", "category": "Categories"}
WORST = 5
NO_CANDIDATES = '<tr><td colspan="5">No candidates this month.</td></tr>'


class ChronicProblem(BaseModel):
    """A 每月一题 candidate as insight stores it: a problem recurring across the month's weeks."""

    model_config = ConfigDict(extra="ignore")

    label: str
    score: float
    active_weeks: int
    weeks: int
    tickets: int
    first: str
    last: str


@dataclass(frozen=True)
class MonthReport:
    month: str
    month_board: Board
    days: list[Board]
    chronic: list[ChronicProblem] = field(default_factory=list)


def month_days(month: str) -> list[date]:
    check_bucket("month", month)
    year, mon = (int(p) for p in month.split("-"))
    return [date(year, mon, d) for d in range(1, calendar.monthrange(year, mon)[1] + 1)]


async def load_month_from_record(
    record: RecordReader, month: str, min_volume: int, tz: tzinfo
) -> MonthReport:
    """The month's report from the record (any past month), without 每月一题 candidates (insight's)."""
    days = month_days(month)
    start = datetime.combine(days[0], time(), tz)
    end = datetime.combine(days[-1] + timedelta(days=1), time(), tz)
    tables = await daily_tables(record, start, end, tz)
    return MonthReport(
        month=month,
        month_board=board(summed(list(tables.values())), "month", month, min_volume),
        days=[board(tables.get(d, Table()), "day", d.isoformat(), min_volume) for d in days],
    )


async def load_month(redis: Redis, month: str, min_volume: int) -> MonthReport:
    check_bucket("month", month)
    year, mon = (int(p) for p in month.split("-"))
    days = [date(year, mon, d).isoformat() for d in range(1, calendar.monthrange(year, mon)[1] + 1)]
    month_table = (await load_tables(redis, "month", [month]))[month]
    day_tables = await load_tables(redis, "day", days)
    raw = await redis.get(keys.chronic(month))
    chronic = TypeAdapter(list[ChronicProblem]).validate_json(raw) if raw else []
    return MonthReport(
        month=month,
        month_board=board(month_table, "month", month, min_volume),
        days=[board(day_tables[d], "day", d, min_volume) for d in days],
        chronic=chronic,
    )


# -- CSV ------------------------------------------------------------------------------------------------


def csv_rows(report: MonthReport) -> list[dict[str, str | int | float | None]]:
    rows = []
    for b, units in [
        (report.month_board, [report.month_board.city]),
        *[(report.month_board, report.month_board.units[d]) for d in DIMENSIONS],
        *[(day, [day.city]) for day in report.days],
    ]:
        for unit in units:
            row: dict[str, str | int | float | None] = {
                "window": b.window,
                "bucket": b.bucket,
                "dimension": unit.dimension,
                "unit": unit.unit,
                **unit.counts,
            }
            for rate in RATE_NAMES:
                f = unit.rates[rate]
                row |= {
                    f"{rate}_numerator": f.numerator,
                    f"{rate}_denominator": f.denominator,
                    f"{rate}_raw": _round(f.raw),
                    f"{rate}_expected": _round(f.expected),
                    f"{rate}_ratio": _round(f.ratio),
                    f"{rate}_rank": f.rank,
                }
            rows.append(row)
    return rows


def render_chronic_csv(report: MonthReport) -> str:
    """The month's 每月一题 candidates, ranked, as insight found them."""
    out = io.StringIO()
    columns = ["rank", "label", "score", "tickets", "active_weeks", "weeks", "first", "last"]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for rank, problem in enumerate(report.chronic, 1):
        writer.writerow({"rank": rank, **problem.model_dump(include=set(columns))})
    return out.getvalue()


def render_csv(report: MonthReport) -> str:
    rows = csv_rows(report)
    fields = ["window", "bucket", "dimension", "unit", *MEASURES]
    for rate in RATE_NAMES:
        fields += [f"{rate}_{k}" for k in ("numerator", "denominator", "raw", "expected", "ratio", "rank")]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# -- HTML -----------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def line_chart(days: list[Board], width: int = 760, height: int = 260) -> str:
    """The city's three rates per day; a day with no cases for a rate leaves a gap in its line."""
    left, right, top, bottom = 44, 16, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(days) - 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">']
    parts.append("<title>City rates per day</title>")
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{int(tick * 100)}%</text>"
        )
    for i, day in enumerate(days):
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="middle" font-size="11">'
                f"{escape(day.bucket[-2:])}</text>"
            )
    for rate in RATE_NAMES:
        segment: list[str] = []
        segments = []
        for i, day in enumerate(days):
            value = day.city.rates[rate].raw
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(value):.1f}")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="2.5" fill="{COLOURS[rate]}"/>')
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(
                f'<polyline fill="none" stroke="{COLOURS[rate]}" stroke-width="2" points="{" ".join(seg)}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(units: list[UnitReport], rate: RateName, width: int = 760) -> str:
    """Each ranked unit's raw rate as a bar (0-100%), labelled with its standardised ratio."""
    rows = [u for u in units if u.rates[rate].rank is not None]
    rows.sort(key=lambda u: u.rates[rate].rank or 0)
    label_w, bar_h, gap = 190, 12, 6
    height = 24 + len(rows) * (bar_h + gap)
    plot_w = width - label_w - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {max(height, 40)}" role="img">']
    parts.append(f"<title>{escape(RATE_LABELS[rate])}: rate and observed/expected ratio</title>")
    for i, u in enumerate(rows):
        top = 20 + i * (bar_h + gap)
        f = u.rates[rate]
        parts.append(
            f'<text x="{label_w - 6}" y="{top + bar_h + 3}" text-anchor="end" font-size="11">'
            f"{escape(u.unit)}</text>"
        )
        w = plot_w * min(1.0, max(0.0, f.raw or 0.0))
        parts.append(
            f'<rect x="{label_w}" y="{top}" width="{w:.1f}" height="{bar_h - 1}" fill="{COLOURS[rate]}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{top + bar_h - 2}" font-size="10">'
            f"{_pct(f.raw)} · O/E {_ratio(f.ratio)}</text>"
        )
    parts.append(
        f'<text x="{label_w}" y="12" font-size="11"><tspan fill="{COLOURS[rate]}">■ rate</tspan>  '
        "O/E = observed / expected for the unit's case mix (1.00 = as expected)</text></svg>"
    )
    return "".join(parts)


def _table(units: list[UnitReport], dimension: str) -> str:
    head = "".join(
        f"<th>{escape(RATE_LABELS[r])}<br><small>rate · O/E (rank)</small></th>" for r in RATE_NAMES
    )
    lines = [
        f"<table><thead><tr><th>{escape(dimension)}</th><th>dispatched</th><th>evaluated</th>{head}</tr></thead><tbody>"
    ]

    def by_satisfaction_rank(u: UnitReport) -> tuple[bool, int, str]:
        rank = u.rates["satisfaction"].rank
        return (rank is None, rank or 0, u.unit)

    for u in sorted(units, key=by_satisfaction_rank):
        cells = []
        for r in RATE_NAMES:
            f = u.rates[r]
            ratio = "" if dimension == "category" else f" · {_ratio(f.ratio)}"
            ranked = f" ({f.rank})" if f.rank is not None else ""
            cells.append(
                f"<td>{_pct(f.raw)}{ratio}{ranked}<br><small>{f.numerator}/{f.denominator}</small></td>"
            )
        lines.append(
            f"<tr><td>{escape(u.unit)}</td><td>{u.counts['dispatched']}</td><td>{u.counts['evaluated']}</td>"
            + "".join(cells)
            + "</tr>"
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def worst_categories(report: MonthReport) -> list[UnitReport]:
    """Categories with enough answers, lowest resolution rate first."""
    cats = [u for u in report.month_board.units["category"] if u.rates["resolution"].rank is not None]
    return sorted(cats, key=lambda u: (u.rates["resolution"].raw or 0.0, u.unit))[:WORST]


CSS = """
body{font-family:system-ui,"Noto Sans CJK SC","PingFang SC",sans-serif;margin:2em auto;max-width:900px}
body{color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:150px}
.card b{font-size:1.6em;display:block}table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #eee;padding:.3em .5em;text-align:left;vertical-align:top}small{color:#777}
.legend span{margin-right:1.2em}svg{width:100%;height:auto}
"""


def render_html(report: MonthReport) -> str:
    mb = report.month_board
    cards = "".join(
        f'<div class="card">{escape(RATE_LABELS[r])}'
        f'<b style="color:{COLOURS[r]}">{_pct(mb.city.rates[r].raw)}</b>'
        f"<small>{mb.city.rates[r].numerator} / {mb.city.rates[r].denominator}</small></div>"
        for r in RATE_NAMES
    )
    counts = mb.city.counts
    volume = (
        f"{counts['dispatched']} dispatches, {counts['surveyed']} surveys sent, "
        f"{counts['evaluated']} answered, "
        f"{counts['unevaluated']} not evaluated, {counts['reopened']} reopened"
    )
    legend = "".join(
        f'<span style="color:{COLOURS[r]}">■ {escape(RATE_LABELS[r])}</span>' for r in RATE_NAMES
    )
    worst = worst_categories(report)
    worst_rows = "".join(
        f"<tr><td>{escape(u.unit)}</td><td>{_pct(u.rates['resolution'].raw)}</td>"
        f"<td>{_pct(u.rates['satisfaction'].raw)}</td><td>{u.counts['evaluated']}</td><td>{u.counts['reopened']}</td></tr>"
        for u in worst
    )
    sections = []
    for dimension in ("department", "district"):
        sections.append(
            f"<h2>{DIMENSION_LABELS[dimension]}: ranking</h2>"
            f"<p>Sorted by satisfaction rank. Units with fewer than {mb.min_volume} cases for a rate "
            "are not ranked on it.</p>"
            + bar_chart(mb.units[dimension], "satisfaction")
            + _table(mb.units[dimension], dimension)
        )
    sections.append(f"<h2>{DIMENSION_LABELS['category']}</h2>" + _table(mb.units["category"], "category"))
    chronic_rows = "".join(
        f"<tr><td>{i}</td><td>{escape(p.label)}</td><td>{p.tickets}</td>"
        f"<td>{p.active_weeks} / {p.weeks}</td><td>{p.score:.2f}</td></tr>"
        for i, p in enumerate(report.chronic, 1)
    )
    sections.append(
        "<h2>每月一题 candidates</h2><p>Chronic problems from insight: recurring across the month's weeks "
        "at the same place and category, rather than one-off bursts.</p>"
        "<table><thead><tr><th>#</th><th>problem</th><th>tickets</th><th>weeks active</th><th>score</th></tr>"
        f"</thead><tbody>{chronic_rows or NO_CANDIDATES}"
        "</tbody></table>"
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>三率 report {escape(report.month)}</title>
<style>{CSS}</style></head><body>
<h1>三率 report — {escape(report.month)}</h1>
<div class="cards">{cards}</div>
<p>{escape(volume)}.</p>
<p><small>Response rate: dispatches signed for by the department within the dispatch deadline,
over dispatches. Resolution rate: answers saying the problem is resolved, over survey answers.
Satisfaction rate: 满意 and 基本满意, over survey answers.
Every rate is a share of cases, 0–100%. Beside it, O/E is the unit's indirectly standardised ratio: the
cases it got right (observed) over the number expected had each of its categories gone as they go for the
other units (expected). 1.00 is as expected for its case mix, 1.20 is 20% more than expected, 0.80 is 20%
fewer; units are ranked by it, so a unit given the hardest categories is not punished for them. A
category only one unit handles cannot be compared and counts at the city's rate. Categories show their
rate only.</small></p>
<h2>Rates per day</h2><p class="legend">{legend}</p>{line_chart(report.days)}
<h2>Worst categories (lowest resolution rate, at least {mb.min_volume} answers)</h2>
<table><thead><tr><th>category</th><th>resolution</th><th>satisfaction</th><th>answered</th><th>reopened</th></tr></thead>
<tbody>{worst_rows or '<tr><td colspan="5">No category has enough answers yet.</td></tr>'}</tbody></table>
{"".join(sections)}
</body></html>
"""
