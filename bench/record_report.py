"""A month's 三率 report over a year of recorded tickets, from PostgreSQL, against today's Redis counters.

Generates N tickets (default 1,000,000) spread over the 12 months of 2025 straight into `ticket_events`
(COPY): each dispatched, half of them accepted (some late, some by another department), resolved and
surveyed, a fifth reopened and surveyed again: about 4.5 events a ticket. Then times, 3 times each:
- figure: `hotline report --month 2025-06` from the record (services.evaluation.report.load_month_from_record,
  the SQL of services/evaluation/record_rates.py over the month's partition);
- baseline: the same month from Redis's counters (load_month), filled with the same numbers: what the
  report costs today, for a month Redis still has counters of.
Prints the medians, the ratio, and the record's size per ticket.

    .venv/bin/python bench/record_report.py [--tickets 1000000] [--month 2025-06]

DATABASE_URL / REDIS_URL, else an embedded PostgreSQL and Redis. Writes into a database it creates
(hotline_bench_report) and drops it afterwards. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.evaluation.record_rates import daily_tables, summed  # noqa: E402
from services.evaluation.report import load_month, load_month_from_record  # noqa: E402
from shared import streams  # noqa: E402
from shared.bus import redis_client  # noqa: E402
from shared.db import migrate  # noqa: E402
from shared.db.urls import asyncpg_dsn  # noqa: E402
from shared.rehydration import RecordReader  # noqa: E402
from shared.store import keys  # noqa: E402
from tools.embedded import EmbeddedRedis  # noqa: E402
from tools.embedded_postgres import EmbeddedPostgres  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
DEPARTMENTS = [f"dept_{i:02d}" for i in range(40)]
CATEGORIES = [f"cat_{i:02d}" for i in range(60)]
DISTRICTS = [f"district_{i:02d}" for i in range(16)]
COLUMNS = ("event_id", "occurred_at", "ticket_id", "stream", "version", "body")


def ticket_events(n: int, seed: int = 7) -> Iterator[tuple[object, ...]]:
    rnd = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    year = 365 * 86400
    for i in range(n):
        ticket = f"B{i:09d}"
        at = start + timedelta(seconds=int(year * i / n) + rnd.randrange(600))
        department = rnd.choice(DEPARTMENTS)
        category = rnd.choice(CATEGORIES)
        district = rnd.choice(DISTRICTS)
        due = at + timedelta(hours=2)
        yield (
            f"{ticket}-d",
            at,
            ticket,
            streams.DISPATCHED,
            1,
            json.dumps(
                {
                    "department": department,
                    "category": category,
                    "district": district,
                    "urgency": "general",
                    "dispatch_due_at": due.isoformat(),
                    "feedback_due_at": (at + timedelta(days=7)).isoformat(),
                    "reason": "rule",
                    "attempt": 1,
                    "received_at": at.isoformat(),
                }
            ),
        )
        acted = at + timedelta(minutes=rnd.choice((20, 50, 90, 150)))
        if i % 2:
            by = department if i % 13 else rnd.choice(DEPARTMENTS)
            yield (
                f"{ticket}-a",
                acted,
                ticket,
                streams.UPDATED,
                1,
                json.dumps({"department": by, "action": "accept"}),
            )
        resolved = acted + timedelta(hours=rnd.randrange(1, 48))
        yield (
            f"{ticket}-r",
            resolved,
            ticket,
            streams.UPDATED,
            1,
            json.dumps({"department": department, "action": "resolve"}),
        )
        answered = resolved + timedelta(hours=rnd.randrange(1, 24))
        ok = rnd.random() < 0.8
        score = rnd.choice((5, 5, 4, 4, 3, 2, 1)) if rnd.random() < 0.9 else None
        yield (
            f"{ticket}-s1",
            answered,
            ticket,
            streams.SURVEYS_ANSWERED,
            1,
            json.dumps({"resolved": ok, "satisfaction": score, "survey_round": 1}),
        )
        if not ok:
            again = answered + timedelta(hours=rnd.randrange(2, 72))
            yield (
                f"{ticket}-r2",
                again,
                ticket,
                streams.UPDATED,
                1,
                json.dumps({"department": department, "action": "resolve"}),
            )
            yield (
                f"{ticket}-s2",
                again + timedelta(hours=3),
                ticket,
                streams.SURVEYS_ANSWERED,
                1,
                json.dumps({"resolved": True, "satisfaction": 4, "survey_round": 2}),
            )


async def load(url: str, n: int) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for m in range(0, 14):
            await conn.execute(
                "SELECT hotline_ensure_partitions('ticket_events', $1)", date(2025 + m // 12, m % 12 + 1, 1)
            )
        rows = 0
        batch: list[tuple[object, ...]] = []
        for row in ticket_events(n):
            batch.append(row)
            if len(batch) == 200_000:
                await conn.copy_records_to_table("ticket_events", records=batch, columns=COLUMNS)
                rows += len(batch)
                batch = []
        await conn.copy_records_to_table("ticket_events", records=batch, columns=COLUMNS)
        rows += len(batch)
        await conn.execute("ANALYZE ticket_events")
        return rows
    finally:
        await conn.close()


async def size(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(
            await conn.fetchval(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'ticket_events'::regclass"
            )
        )
    finally:
        await conn.close()


async def fill_redis(redis_url: str, url: str, month: str) -> None:
    """Redis's counters of the month and its days, holding the record's numbers (what evaluation keeps)."""
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=TZ)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=TZ)
    record = RecordReader(url)
    try:
        days = await daily_tables(record, start, end, TZ)
    finally:
        await record.close()
    redis = redis_client(redis_url)
    try:
        await redis.flushdb()
        buckets = {keys.rates("day", d.isoformat()): t for d, t in days.items()}
        buckets[keys.rates("month", month)] = summed(list(days.values()))
        for key, table in buckets.items():
            fields = {
                f"{dimension}|{unit}|{category}|{measure}": value
                for (dimension, unit, category), counts in table.cells.items()
                for measure, value in counts.items()
                if value
            }
            if fields:
                await redis.hset(key, mapping=fields)
    finally:
        await redis.aclose()


def timed(runs: int, make: object) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        asyncio.run(make())  # type: ignore[operator]
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--month", default="2025-06")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack:
        server = os.environ.get("DATABASE_URL") or stack.enter_context(EmbeddedPostgres()).url
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(EmbeddedRedis()).url
        name = "hotline_bench_report"
        admin = asyncpg_dsn(server)

        async def admin_sql(sql: str) -> None:
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
        url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
        stack.callback(lambda: asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
        migrate.upgrade(url)
        started = time.perf_counter()
        rows = asyncio.run(load(url, args.tickets))
        loaded = time.perf_counter() - started
        total = asyncio.run(size(url))
        print(
            f"recorded {args.tickets:,} tickets as {rows:,} events in {loaded:.0f} s "
            f"({rows / loaded:,.0f} rows/s)"
        )
        print(
            f"ticket_events: {total / 2**20:,.0f} MiB, "
            f"{total / args.tickets:,.0f} bytes per ticket (indexes included)"
        )
        asyncio.run(fill_redis(redis_url, url, args.month))

        async def from_record() -> None:
            # A connection of its own each time, as the CLI's one report opens.
            record = RecordReader(url)
            try:
                report = await load_month_from_record(record, args.month, 20, TZ)
            finally:
                await record.close()
            assert report.month_board.city.counts["dispatched"] > 0

        async def from_redis() -> None:
            redis = redis_client(redis_url)
            try:
                await load_month(redis, args.month, 20)
            finally:
                await redis.aclose()

        record = statistics.median(timed(args.runs, from_record))
        counters = statistics.median(timed(args.runs, from_redis))
        print(f"month {args.month} report from the record: {record:.2f} s (median of {args.runs})")
        print(f"month {args.month} report from Redis counters (baseline): {counters:.3f} s")
        print(f"record / counters: {record / counters:.0f}x")


if __name__ == "__main__":
    main()
