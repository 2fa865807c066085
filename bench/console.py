"""The console's pages with 100,000 tickets in the store: p50/p95 per page, beside the floor of the same
app (`/livez`: the framework and the session-free path), in one run; then search over history on the
system of record (PostgreSQL) against the Redis fallback, the same queries in the same run (ratio).

    .venv/bin/python -m bench.console [--tickets 100000] [--requests 200] [--search-requests 50]

An embedded Redis is filled with --tickets tickets whose texts are the Teddy Cup messages
($HOTLINE_DATASETS, default /work/shared/datasets) cycled, spread over 90 days and the default city's
districts, categories and departments: 5% open (in the departments' open sets), 2,000 on the review
queue, each with a three-entry history, and a month of 三率 counters. An embedded PostgreSQL at the newest
migration gets the same tickets in its `tickets` table (as the recorder would have written them). Two
console apps share the Redis, one with the record (DATABASE_URL) and one without (the Redis fallback);
each is served in this process by uvicorn on a free port and asked over real HTTP, one request at a time,
signed in as each role.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import redis as sync_redis
import uvicorn

from services.console.app import create_app
from services.console.history import WORDS
from services.console.settings import ConsoleSettings
from services.evaluation.rates import bucket_of
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from shared.store import keys
from tools.embedded import EmbeddedRedis, free_port
from tools.embedded_postgres import EmbeddedPostgres

CATEGORIES = ["urban_construction", "environment", "transport", "utilities", "housing_property", "health"]
DEPARTMENTS = {
    "urban_construction": "urban_management",
    "environment": "environment_bureau",
    "transport": "transport_bureau",
    "utilities": "water_utility",
    "housing_property": "housing_bureau",
    "health": "health_commission",
}
DISTRICTS = ["donghu", "xishan", "nangang", "beiyuan"]
# Search over history: filters only, a word in 29% of the texts, one in 1.4% with a filter, one in 0.2%,
# two words, and words no text holds (every ticket of the window must be looked at to say so).
SEARCHES = [
    "/search?district=donghu&status=accepted",
    "/search?q=小区",
    "/search?q=路灯&district=donghu",
    "/search?q=井盖",
    "/search?q=噪音+扰民",
    "/search?q=地铁站+漏水",
]
# The columns the record's copy of a bench ticket fills (its other columns stay NULL).
RECORD_COLUMNS = (
    "ticket_id",
    "received_at",
    "rev",
    "status",
    "channel",
    "text",
    "category",
    "confidence",
    "urgency",
    "district",
    "department",
    "dispatched_at",
    "dispatch_due_at",
    "feedback_due_at",
)


def texts() -> list[str]:
    root = Path(os.environ.get("HOTLINE_DATASETS", "/work/shared/datasets"))
    with (root / "teddycup2020c" / "hotspot_messages.csv").open(encoding="utf-8") as f:
        return [f"{r['title']} {r['text']}"[:400] for r in csv.DictReader(f)]


def fill(url: str, n: int, recorded: list[tuple[Any, ...]]) -> str:
    """Write n tickets, appending each as the record's row to `recorded`; answer the id of an open ticket
    of urban_management (for the ticket page)."""
    db = sync_redis.Redis.from_url(url)
    db.flushdb()
    rng = random.Random(5)
    corpus = texts()
    now = datetime.now(UTC)
    open_one = ""
    pipe = db.pipeline(transaction=False)
    for i in range(n):
        tid = f"TB{i:08d}"
        category = rng.choice(CATEGORIES)
        department = DEPARTMENTS[category]
        received = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        is_open = rng.random() < 0.05
        status = rng.choice(["dispatched", "accepted"]) if is_open else "resolved"
        alternatives = [[category, 0.41], [rng.choice(CATEGORIES), 0.3], [rng.choice(CATEGORIES), 0.1]]
        fields = {
            "status": status,
            "channel": "telephony",
            "text": corpus[i % len(corpus)],
            "received_at": received.isoformat(),
            "category": category,
            "confidence": "0.41",
            "alternatives": json.dumps(alternatives),
            "urgency": "general",
            "district": rng.choice(DISTRICTS),
            "department": department,
            "dispatched_at": (received + timedelta(minutes=3)).isoformat(),
            "dispatch_due_at": (received + timedelta(hours=24)).isoformat(),
            "feedback_due_at": (received + timedelta(days=7)).isoformat(),
        }
        pipe.hset(keys.ticket(tid), mapping=fields)
        dispatched = received + timedelta(minutes=3)
        due = (received + timedelta(hours=24), received + timedelta(days=7))
        text, district = fields["text"], fields["district"]
        row = (tid, received, 1, status, "telephony", text, category, 0.41, "general", district, department)
        recorded.append((*row, dispatched, *due))
        for event in ("received", "classified", "dispatched"):
            pipe.rpush(keys.history(tid), json.dumps({"at": received.isoformat(), "event": event}))
        pipe.zadd(keys.by_created, {tid: received.timestamp()})
        if is_open:
            pipe.zadd(keys.department_open(department), {tid: received.timestamp()})
            if department == "urban_management":
                open_one = tid
        if i < 2000:
            pipe.zadd(keys.review, {tid: received.timestamp()})
        if i % 5000 == 4999:
            pipe.execute()
    month = bucket_of("month", now, ZoneInfo(ConsoleSettings().timezone))
    rates = {}
    for d in DISTRICTS:
        for c in CATEGORIES:
            unit = f"department|{DEPARTMENTS[c]}|{c}"
            for measure, value in (
                ("dispatched", 400),
                ("responded", 380),
                ("evaluated", 90),
                ("resolved", 80),
            ):
                rates[f"{unit}|{measure}"] = value
                rates[f"district|{d}|{c}|{measure}"] = value // 4
    pipe.hset(keys.rates("month", month), mapping=rates)
    pipe.execute()
    return open_one


async def record(url: str, rows: list[tuple[Any, ...]], pending: int = 0) -> dict[str, float]:
    """Copy the tickets into the record's `tickets`, the first half with the word triggers off and the
    second with them on (what a ticket's first write pays for its words: since migration 0007, only being
    listed as pending), then every ticket's words;
    answers ms per row each way, the ms of one ticket's word keys, and the word index's size in MB. The
    newest `pending` tickets are then left as a burst leaves them: listed, not indexed yet."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        months = {date(r[1].year, r[1].month, 1) for r in rows}
        for month in sorted(months):
            await conn.execute("SELECT hotline_ensure_partitions('tickets', $1)", month)
        half = len(rows) // 2
        out: dict[str, float] = {}
        for key, part, switch in (("plain_ms", rows[:half], "DISABLE"), ("words_ms", rows[half:], "ENABLE")):
            await conn.execute(f"ALTER TABLE tickets {switch} TRIGGER tickets_words")
            started = time.perf_counter()
            await conn.copy_records_to_table("tickets", records=part, columns=RECORD_COLUMNS)
            out[key] = (time.perf_counter() - started) * 1000 / len(part)
        # Every ticket indexed by the recorder's pass (migration 0007), as it leaves them once caught up.
        await conn.execute(
            "INSERT INTO ticket_words_pending SELECT ticket_id, received_at FROM tickets"
            " ON CONFLICT DO NOTHING"
        )
        await conn.execute("SELECT hotline_index_words($1)", len(rows))
        if pending:
            await conn.execute(
                "INSERT INTO ticket_words_pending SELECT ticket_id, received_at FROM tickets"
                " ORDER BY received_at DESC LIMIT $1",
                pending,
            )
            await conn.execute(
                "DELETE FROM ticket_words USING ticket_words_pending AS p"
                " WHERE (ticket_words.ticket_id, ticket_words.received_at) = (p.ticket_id, p.received_at)"
            )
        # As autovacuum would have by now: statistics (the pending list emptied: stale ones make the planner
        # take every ticket of the window for a candidate), and the GIN index's pending list merged.
        await conn.execute("VACUUM ANALYZE tickets, ticket_words, ticket_words_pending")
        size = await conn.fetchval(
            "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('ticket_words_words') WHERE isleaf"
        )
        started = time.perf_counter()
        await conn.fetchval(f"SELECT sum(cardinality(hotline_word_keys({WORDS}))) FROM tickets")
        out["keys_ms"] = (time.perf_counter() - started) * 1000 / len(rows)
        return {**out, "words_index_mb": int(size) / 1e6}
    finally:
        await conn.close()


@contextmanager
def served(settings: ConsoleSettings) -> Iterator[str]:
    """The console app served by uvicorn in a thread of this process; yields its base URL."""
    config = uvicorn.Config(create_app(settings), port=settings.port, log_level="warning", access_log=False)
    web = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(web.serve()), daemon=True)
    thread.start()
    while not web.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        web.should_exit = True
        thread.join(10)


def signed_in(client: httpx.Client, user: str) -> None:
    page = client.get("/login")
    token = page.cookies.get("hotline_login_csrf") or client.cookies.get("hotline_login_csrf")
    answer = client.post(
        "/login", data={"user": user, "password": f"hotline-dev-{user}", "csrf": token, "next": "/"}
    )
    assert answer.status_code in (200, 303) and "hotline_session" in client.cookies, answer.text[:200]


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path)  # warm: templates compiled, caches filled
    out = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def line(label: str, ms: list[float], floor: float) -> str:
    return f"{label[:42]:42} {statistics.median(ms):8.1f} {p95(ms):8.1f} {p95(ms) / floor:12.1f}"


def pages_table(base: str, ticket: str, n: int) -> None:
    """Every role's pages (the app with the record: only search reads it)."""
    pages = {
        "operator": ["/operator", "/operator/queue.part", "/counts.part", f"/tickets/{ticket}"],
        "urban_management": ["/department", "/department/inbox.part"],
        "supervisor": ["/supervisor", "/supervisor/overview.part"],
    }
    with httpx.Client(base_url=base, follow_redirects=False) as floor:
        baseline = p95(timed(floor, "/livez", n))
    print(f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'p95 / floor':>12}")
    print(f"{'/livez (floor)':42} {'':8} {baseline:8.1f} {1.0:12.1f}")
    worst = 0.0
    for user, paths in pages.items():
        with httpx.Client(base_url=base, follow_redirects=False) as client:
            signed_in(client, user)
            for path in paths:
                ms = timed(client, path, n)
                worst = max(worst, p95(ms))
                print(line(f"{path} ({user})", ms, baseline))
    print(f"worst page p95: {worst:.1f} ms (aim: under 200 ms)")


def search_table(record_base: str, redis_base: str, n: int, hits: Callable[[str], str]) -> None:
    """Each search on the record and on the Redis fallback, alternately, as the operator."""
    print(
        f"\n{'search (operator)':42} {'record p50':>10} {'p95':>7} {'Redis p50':>10} {'p95':>7} {'ratio':>6}"
    )
    worst = 0.0
    with (
        httpx.Client(base_url=record_base, follow_redirects=False) as on_record,
        httpx.Client(base_url=redis_base, follow_redirects=False) as on_redis,
    ):
        signed_in(on_record, "operator")
        signed_in(on_redis, "operator")
        for path in SEARCHES:
            pg, rd = timed(on_record, path, n), timed(on_redis, path, n)
            worst = max(worst, p95(pg))
            ratio = p95(pg) / p95(rd)
            print(
                f"{path[:42]:42} {statistics.median(pg):10.1f} {p95(pg):7.1f}"
                f" {statistics.median(rd):10.1f} {p95(rd):7.1f} {ratio:6.2f}"
            )
            print(
                f"{'':4}found: record {hits(on_record.get(path).text)}; Redis {hits(on_redis.get(path).text)}"
            )
    print(f"worst search p95 on the record: {worst:.1f} ms (aim: under 200 ms)")


def found_count(page: str) -> str:
    """How many rows a search page lists, and whether the Redis scan says it stopped short."""
    listed = page.count('class="tid" href="/tickets/')
    return f"{listed} listed" + (" (scan stopped short)" if 'data-complete="0"' in page else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--search-requests", type=int, default=50)
    # Searches during a burst: this many of the newest tickets still wait for the word index.
    parser.add_argument("--pending", type=int, default=0)
    args = parser.parse_args()
    with EmbeddedRedis() as server, EmbeddedPostgres() as postgres:
        started = time.perf_counter()
        rows: list[tuple[Any, ...]] = []
        ticket = fill(server.url, args.tickets, rows)
        print(f"filled {args.tickets:,} tickets in Redis in {time.perf_counter() - started:.0f} s")
        migrate.upgrade(postgres.url)
        copied = asyncio.run(record(postgres.url, rows, args.pending))
        print(
            f"copied them into the record: {copied['plain_ms']:.3f} ms a row without the word trigger,"
            f" {copied['words_ms']:.3f} ms with it (word keys of a ticket: {copied['keys_ms']:.3f} ms;"
            f" word index {copied['words_index_mb']:.1f} MB); {args.pending:,} newest pending indexing"
        )
        with_record = ConsoleSettings(redis_url=server.url, port=free_port(), DATABASE_URL=postgres.url)
        redis_only = ConsoleSettings(redis_url=server.url, port=free_port())
        with served(with_record) as record_base, served(redis_only) as redis_base:
            pages_table(record_base, ticket, args.requests)
            search_table(record_base, redis_base, args.search_requests, found_count)


if __name__ == "__main__":
    main()
