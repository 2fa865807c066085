"""`hotline outbound list|replay`: department webhooks that were never delivered, and sending them again."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from services.dispatch.outbound import dead_deliveries, redeliver
from shared.bus import run_with_redis
from shared.cliargs import positive_int, unmatched_ids
from shared.settings import CommonSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("outbound", help="department webhooks given up on, and sending them again")
    sub = parser.add_subparsers(dest="outbound_command", required=True)
    ls = sub.add_parser("list", help="undelivered webhooks with the reason and the last error")
    ls.add_argument("--limit", type=positive_int, default=100)
    ls.add_argument("--json", action="store_true", help="one JSON array as the last line")
    ls.set_defaults(func=cmd_list)
    rp = sub.add_parser("replay", help="queue them again (fresh tries) once the department's system is back")
    rp.add_argument("--id", action="append", dest="ids", help="a dead letter id (repeatable); default: all")
    rp.set_defaults(func=cmd_replay)


def cmd_list(args: argparse.Namespace) -> int:
    dead = run_with_redis(CommonSettings().redis_url, lambda redis: dead_deliveries(redis, args.limit))
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in dead], ensure_ascii=False))
        return 0
    table = Table(title=f"{len(dead)} undelivered webhook(s)")
    for col in ("id", "department", "ticket", "reason", "tries", "error"):
        table.add_column(col)
    for d in dead:
        table.add_row(d.dlq_id, d.department, d.ticket_id or "-", d.reason, str(d.attempts), d.error[:80])
    Console().print(table)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    queued = run_with_redis(CommonSettings().redis_url, lambda redis: redeliver(redis, args.ids))
    print(f"queued {queued} webhook(s) again")
    return unmatched_ids(args.ids, queued, "undelivered webhooks (see `hotline outbound list`)")
