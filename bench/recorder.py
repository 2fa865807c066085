"""How fast one recorder writes to PostgreSQL, and what a ticket costs there.

The loop (intake, classifier, dispatch, evaluation, insight; no recorder) runs N real citizen messages
(Teddy Cup 2020 C when present) to the end on an embedded Redis. Then one recorder, started alone,
writes the whole backlog: every event of every ticket stream and every ticket's state and history.
Printed: events/s and tickets/s it wrote, against what the loop makes at its aim of 1,000 tickets/s
(events per ticket × 1,000), as a ratio; and bytes per ticket in PostgreSQL (tables and indexes).

    .venv/bin/python bench/recorder.py [--tickets 5000] [--database-url URL] [--profile FILE]

Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bench.pipeline import calls, cpu_seconds, load_texts, machine  # noqa: E402
from services.intake.settings import DEV_SECRET  # noqa: E402
from services.recorder.app import RecorderSettings, build  # noqa: E402
from shared import streams  # noqa: E402
from shared.bus import redis_client  # noqa: E402
from shared.db.urls import asyncpg_dsn  # noqa: E402
from shared.store import keys  # noqa: E402
from tools.demo import post_calls, wait_dispatched  # noqa: E402
from tools.runner import SERVICES, Stack  # noqa: E402

AIM_TICKETS_PER_SECOND = 1000


async def backlog(redis: Redis) -> tuple[bool, int]:
    """Whether the recorder group has read and acknowledged every entry, and tickets not yet written."""
    done = True
    for stream in streams.TICKET_STREAMS:
        last = (await redis.xinfo_stream(stream))["last-generated-id"]
        for g in await redis.xinfo_groups(stream):
            if g["name"] in (streams.RECORDER, streams.RECORDER.encode()):
                done = done and not g["pending"] and g["last-delivered-id"] == last
    return done, int(await redis.zcard(keys.unrecorded))


async def entries(redis: Redis) -> int:
    return sum([int(await redis.xlen(stream)) for stream in streams.TICKET_STREAMS])


async def record_backlog(redis_url: str, database_url: str) -> tuple[int, int, float]:
    redis = redis_client(redis_url)
    events, (_, tickets) = await entries(redis), await backlog(redis)
    settings = RecorderSettings(redis_url=redis_url, database_url=database_url, log_level="WARNING")
    worker, _ = build(settings)
    started = time.perf_counter()
    await worker.start_background()
    try:
        left = await backlog(redis)
        while left != (True, 0):
            await asyncio.sleep(0.05)
            left = await backlog(redis)
        seconds = time.perf_counter() - started
    finally:
        await worker.stop_background()
        await worker.redis.aclose()
        await redis.aclose()
    return events, tickets, seconds


async def bytes_in_postgres(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        sizes = {}
        # Every partitioned table the migrations made (the record's tables, the search index's too).
        tables = [
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
                " ORDER BY 1"
            )
        ]
        for table in tables:
            sizes[table] = int(
                await conn.fetchval(
                    "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
                    " WHERE inhparent = $1::regclass",
                    table,
                )
            )
        return sizes
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--database-url", default=None, help="default: an embedded PostgreSQL")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="FILE", help="cProfile stats of the recorder's run"
    )
    args = parser.parse_args()
    print(f"# Recorder benchmark\n{machine()}")
    texts = load_texts()
    loop = tuple(s for s in SERVICES if s != "recorder")
    with Stack(
        database_url=args.database_url,
        services=loop,
        extra_env={"HOTLINE_LOG_LEVEL": "WARNING"},
        ready_timeout=300,
    ) as stack:
        assert stack.redis_url is not None and stack.database_url is not None
        batch = calls(args.tickets, f"rec-{random.randrange(10**6)}", texts, random.Random(3))
        posted = asyncio.run(post_calls(stack.url_of("intake"), DEV_SECRET, batch, concurrency=32))
        outcome = asyncio.run(wait_dispatched(stack.redis_url, list(posted.values()), wait_seconds=600))
        print(f"{len(posted)} tickets through the loop ({len(outcome.missing)} not dispatched)")
        for name in list(stack.processes):
            stack.stop_service(name)
        pg_pid = stack.embedded_pg.process.pid if stack.embedded_pg and stack.embedded_pg.process else None
        cpu0, pg0 = time.process_time(), cpu_seconds(pg_pid)
        profile = cProfile.Profile() if args.profile else None
        with profile or contextlib.nullcontext():
            events, tickets, seconds = asyncio.run(record_backlog(stack.redis_url, stack.database_url))
        recorder_cpu, pg_cpu = time.process_time() - cpu0, cpu_seconds(pg_pid) - pg0
        sizes = asyncio.run(bytes_in_postgres(stack.database_url))
    if profile is not None:
        profile.dump_stats(args.profile)
    per_ticket = events / max(1, len(posted))
    need = per_ticket * AIM_TICKETS_PER_SECOND
    print(f"\nOne recorder wrote {events} events and {tickets} ticket states in {seconds:.1f} s:")
    print(f"  {events / seconds:,.0f} events/s, {tickets / seconds:,.0f} tickets/s")
    print(
        f"  the loop at {AIM_TICKETS_PER_SECOND:,} tickets/s makes {need:,.0f} events/s ({per_ticket:.1f} per"
        f" ticket): the recorder writes {events / seconds / need:.2f}× that"
    )
    print(
        f"  CPU: recorder {recorder_cpu:.2f} s ({events / recorder_cpu:,.0f} events per CPU-second),"
        f" PostgreSQL {pg_cpu:.2f} s" + ("" if pg_pid else " (not embedded: not measured)")
    )
    busy = recorder_cpu + pg_cpu
    if pg_pid and busy:
        print(
            f"  on 2 free cores (recorder + PostgreSQL at {busy / seconds:.2f} cores here):"
            f" {events / busy * 2:,.0f} events/s, {tickets / busy * 2:,.0f} tickets/s if CPU-bound"
        )
    total = sum(sizes.values())
    print(f"PostgreSQL: {total / max(1, len(posted)):,.0f} bytes per ticket (tables and indexes)")
    for table, size in sizes.items():
        print(f"  {table:15s} {size / max(1, len(posted)):8,.0f} B/ticket")
    print(f"\ndone; {machine()}")


if __name__ == "__main__":
    main()
