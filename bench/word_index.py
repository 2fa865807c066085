"""What the console's word index costs PostgreSQL a ticket, what it weighs, and how many candidates it gives.

An embedded PostgreSQL at `--revision` (default the newest; 0008 is the bigram index before 0009) gets
--tickets tickets whose texts are the messages the loop's benchmark sends (`bench.pipeline.load_texts`:
Teddy Cup 2020 C, title and text, cycled), spread over 90 days. Its triggers list them pending, as the
recorder's writes do; then `hotline_index_words(--batch)` is called until nothing is pending, as the
recorder's background pass does, and `VACUUM ticket_words` merges the GIN index's pending list (autovacuum's
work, counted too). Printed: CPU of the whole server (every backend and background process) per ticket
indexed, the index's bytes per ticket, and for a few words the tickets the index proposes against those
that hold the word (ILIKE).

    .venv/bin/python -m bench.word_index [--tickets 20000] [--revision head] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg

from bench.pipeline import cpu_seconds, load_texts
from services.console.history import WORDS
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from tools.embedded_postgres import EmbeddedPostgres

# bench.console's words (29%, 1.4%, 0.2% of the texts, a pair, a pair no text holds), and English ones.
ASKED = ["小区", "路灯", "井盖", "噪音 扰民", "地铁站 漏水", "停水", "A3区", "water", "noise"]


async def measure(url: str, server: int, n: int, batch: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        texts, now = load_texts(), datetime.now(UTC)
        rows = [
            (f"WI{i:08d}", now - timedelta(seconds=i * 90 * 86400 / n), 1, "resolved", texts[i % len(texts)])
            for i in range(n)
        ]
        for month in sorted({date(r[1].year, r[1].month, 1) for r in rows}):
            await conn.execute("SELECT hotline_ensure_partitions('tickets', $1)", month)
        columns = ["ticket_id", "received_at", "rev", "status", "text"]
        await conn.copy_records_to_table("tickets", records=rows, columns=columns)
        await conn.execute("VACUUM ANALYZE tickets, ticket_words_pending")
        cpu, wall = cpu_seconds(server), time.perf_counter()
        while await conn.fetchval("SELECT hotline_index_words($1)", batch):
            pass
        await conn.execute("VACUUM ticket_words")
        cpu, wall = cpu_seconds(server) - cpu, time.perf_counter() - wall
        size = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('ticket_words') WHERE isleaf"
        )
        gin = await conn.fetchval(
            "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('ticket_words_words') WHERE isleaf"
        )
        print(
            f"{n:,} tickets indexed in batches of {batch}: PostgreSQL CPU {cpu * 1000 / n:.3f} ms a ticket"
            f" (wall {wall * 1000 / n:.3f}); ticket_words {int(size) / n:,.0f} bytes a ticket,"
            f" its GIN index {int(gin) / n:,.0f}"
        )
        keys = "hotline_word_keys" if await conn.fetchval("SELECT to_regproc('hotline_word_keys')") else ""
        print(f"{'words':16} {'candidates':>10} {'hold them':>10}")
        for asked in ASKED:
            words = asked.split()
            looked_up = words if keys else [w for w in words if len(w) > 1]
            key = keys or "hotline_bigrams"
            filters = [f"words @> {key}(${i})" for i in range(1, len(looked_up) + 1)] or ["true"]
            candidates = await conn.fetchval(
                f"SELECT count(*) FROM ticket_words WHERE {' AND '.join(filters)}", *looked_up
            )
            likes = " AND ".join(f"({WORDS}) ILIKE '%' || ${i} || '%'" for i in range(1, len(words) + 1))
            holding = await conn.fetchval(f"SELECT count(*) FROM tickets WHERE {likes}", *words)
            print(f"{asked:16} {candidates:10,} {holding:10,}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--revision", default="head")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres:
        migrate.upgrade(postgres.url, args.revision)
        assert postgres.process is not None
        asyncio.run(measure(postgres.url, postgres.process.pid, args.tickets, args.batch))


if __name__ == "__main__":
    main()
