"""The 三率 counters of any past window, computed from the record (`ticket_events` in PostgreSQL).

Redis keeps the counters as evaluation counts them, event by event; the record keeps the events
themselves, for years. The same measures follow from them, counted where evaluation counts them:
- dispatched: each TicketDispatched, in its department, district and category, on its day;
- responded: ... that the department signed for (an accept or resolve of its own) by the dispatch
  deadline, counted on the dispatch's day;
- evaluated / resolved / rated / satisfied: each round's first survey answer, on its day, for the
  department whose resolution was surveyed (the last resolve before it) and the district and category
  of the dispatch before it; reopened: ... when the answer sends the ticket back (not resolved, or
  dissatisfied).
Survey deliveries (surveyed, undelivered, unevaluated) are evaluation's own bookkeeping, not events:
the record has none, and the 三率 need none of them.

Each look-up beyond the window is bounded (a department's signature within 31 days of the
window's end, a resolution and its dispatch within 92 days before its start), so PostgreSQL reads the few
monthly partitions around the window and never the years behind it.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, tzinfo

from services.evaluation.rates import STORED, Table, Units
from shared import streams, surveys
from shared.rehydration import RecordReader

# $1, $2: the window (UTC instants); $3: the city's time zone name. One row per local day and unit.
DISPATCHES = f"""
WITH d AS (
    SELECT ticket_id, occurred_at, body->>'department' AS department, body->>'district' AS district,
           body->>'category' AS category, (body->>'dispatch_due_at')::timestamptz AS due
    FROM ticket_events
    WHERE stream = '{streams.DISPATCHED}' AND occurred_at >= $1 AND occurred_at < $2
)
SELECT (d.occurred_at AT TIME ZONE $3)::date AS day, department, district, category,
       count(*) AS dispatched,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM ticket_events u
           WHERE u.ticket_id = d.ticket_id AND u.stream = '{streams.UPDATED}'
             AND u.occurred_at >= d.occurred_at AND u.occurred_at <= d.due
             AND u.occurred_at >= $1 AND u.occurred_at < $2 + interval '31 days'
             AND u.body->>'action' IN ('accept', 'resolve') AND u.body->>'department' = d.department
       )) AS responded
FROM d GROUP BY 1, 2, 3, 4
"""

ANSWERS = f"""
WITH a AS (
    SELECT DISTINCT ON (ticket_id, coalesce((body->>'survey_round')::int, 0))
           ticket_id, occurred_at, (body->>'resolved')::boolean AS resolved,
           (body->>'satisfaction')::int AS satisfaction
    FROM ticket_events
    WHERE stream = '{streams.SURVEYS_ANSWERED}' AND occurred_at >= $1 AND occurred_at < $2
    ORDER BY ticket_id, coalesce((body->>'survey_round')::int, 0), occurred_at
)
SELECT (a.occurred_at AT TIME ZONE $3)::date AS day, r.department, d.district, d.category,
       count(*) AS evaluated,
       count(*) FILTER (WHERE a.resolved) AS resolved,
       count(a.satisfaction) AS rated,
       count(*) FILTER (WHERE a.satisfaction >= {surveys.SATISFIED_FROM}) AS satisfied,
       count(*) FILTER (
           WHERE NOT a.resolved OR a.satisfaction <= {surveys.DISSATISFIED_UP_TO}
       ) AS reopened
FROM a
JOIN LATERAL (
    SELECT body->>'department' AS department, occurred_at FROM ticket_events u
    WHERE u.ticket_id = a.ticket_id AND u.stream = '{streams.UPDATED}' AND u.body->>'action' = 'resolve'
      AND u.occurred_at <= a.occurred_at AND u.occurred_at >= $1 - interval '92 days'
    ORDER BY u.occurred_at DESC LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT body->>'district' AS district, body->>'category' AS category FROM ticket_events x
    WHERE x.ticket_id = a.ticket_id AND x.stream = '{streams.DISPATCHED}' AND x.occurred_at <= r.occurred_at
      AND x.occurred_at >= $1 - interval '92 days'
    ORDER BY x.occurred_at DESC LIMIT 1
) d ON true
GROUP BY 1, 2, 3, 4
"""

MEASURES_OF = {
    DISPATCHES: ("dispatched", "responded"),
    ANSWERS: ("evaluated", "resolved", "rated", "satisfied", "reopened"),
}


async def daily_tables(record: RecordReader, start: datetime, end: datetime, tz: tzinfo) -> dict[date, Table]:
    """Each local day's counters in [start, end), as Redis would hold them, from the record."""
    days: dict[date, Table] = {}
    async with record.snapshot() as conn:
        for query, measures in MEASURES_OF.items():
            for row in await conn.fetch(query, start, end, str(tz)):
                units = Units.of(row["department"], row["district"], row["category"])
                table = days.setdefault(row["day"], Table())
                for dimension in STORED:
                    cell = (dimension, units.of_dimension(dimension), units.category)
                    counts = table.cells.setdefault(cell, Counter())
                    for measure in measures:
                        counts[measure] += row[measure]
    return days


def summed(tables: list[Table]) -> Table:
    total = Table()
    for table in tables:
        for cell, counts in table.cells.items():
            total.cells.setdefault(cell, Counter()).update(counts)
    return total
