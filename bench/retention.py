"""Redis memory per ticket before and after the hot retention, in one run of the whole system.

Every service runs as its own process (`tools.runner.Stack`, the recorder included) on one Redis and one
PostgreSQL, with a short hot retention (HOTLINE_HOT_RETENTION_DAYS = --retention-seconds). N signed calls
are posted, dispatched, then each department accepts and resolves its tickets through intake's
department API, except --open percent of them, which stay open (the working set). Measured:
- before (today's figure): what the tickets keep in Redis once resolved, before any eviction: the sum of
  MEMORY USAGE over every ticket's hash, history and applied set, and the creation index, per ticket;
- after: the same once the recorder has written every final state and its sweep has run past the retention.
The streams' entries are apart (trimmed by MAXLEN, not by the retention) and reported on their own.

    .venv/bin/python bench/retention.py [--tickets 1000] [--open 10] [--retention-seconds 60]

REDIS_URL / DATABASE_URL, else embedded ones. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.intake.settings import DEV_SECRET, dev_department_token  # noqa: E402
from shared import streams  # noqa: E402
from shared.bus import as_str, redis_client  # noqa: E402
from shared.db.urls import asyncpg_dsn  # noqa: E402
from shared.store import TicketStore, keys  # noqa: E402
from tools.demo import make_calls, post_calls, wait_dispatched  # noqa: E402
from tools.embedded import EmbeddedRedis  # noqa: E402
from tools.runner import Stack  # noqa: E402


async def ticket_bytes(redis_url: str) -> tuple[int, int, dict[str, int]]:
    """(tickets in Redis, bytes of their keys and index entries, bytes by kind)."""
    redis = redis_client(redis_url)
    try:
        kinds = {"hash": 0, "history": 0, "applied": 0}
        count = 0
        async for key in redis.scan_iter(match=f"{keys.ticket('*')}", count=1000):
            name = as_str(key)
            suffix = name.rsplit(":", 1)[-1]
            kind = suffix if suffix in ("history", "applied") else "hash"
            if kind == "hash":
                count += 1
            kinds[kind] += int(await redis.memory_usage(name) or 0)
        index = int(await redis.memory_usage(keys.by_created) or 0)
        return count, sum(kinds.values()) + index, kinds
    finally:
        await redis.aclose()


async def record_bytes(database_url: str) -> dict[str, int]:
    """Each table's size in PostgreSQL (its partitions and indexes) and the tickets it holds."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        sizes = {
            table: int(
                await conn.fetchval(
                    "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                    "WHERE inhparent = $1::regclass",
                    table,
                )
            )
            for table in ("ticket_events", "tickets", "ticket_history")
        }
        sizes["count"] = int(await conn.fetchval("SELECT count(*) FROM tickets"))
        return sizes
    finally:
        await conn.close()


async def stream_bytes(redis_url: str) -> int:
    redis = redis_client(redis_url)
    try:
        return sum([int(await redis.memory_usage(s) or 0) for s in streams.ALL_STREAMS])
    finally:
        await redis.aclose()


async def resolve(intake: str, redis_url: str, ticket_ids: Iterable[str]) -> int:
    """Each ticket's department accepts and resolves it, as its own system would, through intake."""
    redis = redis_client(redis_url)
    store = TicketStore(redis, record=None)
    done = 0
    try:
        tickets = [t for t in await store.get_many(list(ticket_ids)) if t is not None and t.department]
        async with httpx.AsyncClient(base_url=intake, timeout=30) as client:
            for ticket in tickets:
                headers = {"authorization": f"Bearer {dev_department_token(str(ticket.department))}"}
                for action in ("accept", "resolve"):
                    path = f"/v1/departments/{ticket.department}/tickets/{ticket.ticket_id}/{action}"
                    resp = await client.post(path, json={"note": "done"}, headers=headers)
                    assert resp.status_code == 202, resp.text
                done += 1
        return done
    finally:
        await redis.aclose()


async def wait_for(redis_url: str, check: Any, seconds: float) -> bool:
    redis = redis_client(redis_url)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await check(redis):
                return True
            await asyncio.sleep(0.5)
        return False
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--open", type=int, default=10, help="percent of tickets left open")
    parser.add_argument("--retention-seconds", type=float, default=60.0)
    parser.add_argument("--logs", type=Path, default=None, help="directory for the services' logs")
    args = parser.parse_args()
    with ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(EmbeddedRedis()).url
        import redis as sync_redis

        sync_redis.Redis.from_url(redis_url).flushdb()
        env = {
            "HOTLINE_HOT_RETENTION_DAYS": str(args.retention_seconds / 86400),
            "HOTLINE_RETENTION_SWEEP_SECONDS": "1",
            "HOTLINE_LOG_LEVEL": "INFO",
        }
        running = stack.enter_context(
            Stack(
                redis_url=redis_url,
                database_url=os.environ.get("DATABASE_URL"),
                extra_env=env,
                log_dir=args.logs,
            )
        )
        calls = make_calls(args.tickets, seed=3)
        posted = asyncio.run(post_calls(running.url_of("intake"), DEV_SECRET, calls))
        ids = list(posted.values())
        outcome = asyncio.run(wait_dispatched(redis_url, ids, wait_seconds=300))
        closing = [t.ticket_id for t in outcome.tickets if t.status != "duplicate"]
        keep_open = len(closing) * args.open // 100
        resolved = asyncio.run(resolve(running.url_of("intake"), redis_url, closing[keep_open:]))
        print(
            f"{len(ids)} tickets posted, {len(outcome.tickets)} dispatched, {resolved} resolved, "
            f"{keep_open} left open"
        )

        async def settled(redis: Any) -> bool:  # every change recorded
            return bool(await redis.zcard(keys.unrecorded) == 0)

        assert asyncio.run(wait_for(redis_url, settled, 300)), "the recorder did not catch up"
        count, before, kinds = asyncio.run(ticket_bytes(redis_url))
        per = {k: v / count for k, v in kinds.items()}
        print(
            f"before: {count} tickets in Redis, {before / count:,.0f} B per ticket "
            f"(hash {per['hash']:,.0f}, history {per['history']:,.0f}, applied {per['applied']:,.0f})"
        )
        time.sleep(args.retention_seconds)

        async def swept(redis: Any) -> bool:
            return bool(await redis.zcard(keys.by_created) <= len(ids) - resolved)

        assert asyncio.run(wait_for(redis_url, swept, 120)), "the sweep did not evict the closed tickets"
        count_after, after, _ = asyncio.run(ticket_bytes(redis_url))
        print(
            f"after:  {count_after} tickets in Redis ({keep_open} open), {after:,} B: "
            f"{after / len(ids):,.0f} B per ticket posted, "
            f"{after / max(1, count_after):,.0f} B per ticket kept"
        )
        print(f"Redis per ticket posted, after / before: {after / before:.3f}")
        print(
            f"streams (trimmed by MAXLEN, not by the retention): {asyncio.run(stream_bytes(redis_url)):,} B"
        )


if __name__ == "__main__":
    main()
