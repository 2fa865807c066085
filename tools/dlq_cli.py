"""`hotline dlq list` and `hotline dlq replay`: the operators' view of dead letters."""

from __future__ import annotations

import argparse
import json

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from shared import dlq, streams
from shared.bus import run_with_redis
from shared.cliargs import positive_int, unmatched_ids
from shared.settings import CommonSettings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("dlq", help="inspect and replay dead letters")
    sub = parser.add_subparsers(dest="dlq_command", required=True)
    ls = sub.add_parser("list", help="dead letters with their reasons")
    ls.add_argument("--stream", choices=streams.ALL_STREAMS, help="only this stream's dead letters")
    ls.add_argument("--limit", type=positive_int, default=100)
    ls.add_argument("--json", action="store_true", help="one JSON array as the last line")
    ls.set_defaults(func=cmd_list)
    rp = sub.add_parser("replay", help="put dead letters back on their stream")
    rp.add_argument("--stream", choices=streams.ALL_STREAMS, required=True)
    rp.add_argument("--id", action="append", dest="ids", help="a dead letter id (repeatable); default: all")
    rp.set_defaults(func=cmd_replay)


def cmd_list(args: argparse.Namespace) -> int:
    async def read(redis: Redis) -> tuple[list[dlq.DeadLetter], int]:
        return await dlq.list_dead(redis, args.stream, args.limit), await redis.xlen(streams.OUTBOUND_DLQ)

    dead, undelivered = run_with_redis(CommonSettings().redis_url, read)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in dead], ensure_ascii=False))
        return 0
    table = Table(title=f"{len(dead)} dead letter(s)")
    for col in ("stream", "id", "ticket", "reason", "deliveries", "service", "error"):
        table.add_column(col)
    for d in dead:
        table.add_row(
            d.stream, d.dlq_id, d.ticket_id or "-", d.reason, str(d.deliveries), d.service, d.error[:80]
        )
    Console().print(table)
    if undelivered:  # not events of a stream: webhooks to departments, with their own tool
        print(f"and {undelivered} undelivered department webhook(s): see `hotline outbound list`")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    replayed = run_with_redis(
        CommonSettings().redis_url, lambda redis: dlq.replay(redis, args.stream, args.ids)
    )
    print(f"replayed {replayed} dead letter(s) onto {args.stream}")
    return unmatched_ids(
        args.ids,
        replayed,
        f"dead letters of {args.stream} (see `hotline dlq list --stream {args.stream}`)",
    )
