"""`hotline report --month YYYY-MM [--out DIR]`: the month's 三率 as HTML (with charts) and CSV."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.evaluation.app import EvaluationSettings
from services.evaluation.report import (
    MonthReport,
    load_month,
    load_month_from_record,
    render_chronic_csv,
    render_csv,
    render_html,
)
from shared.bus import run_with_redis
from shared.rehydration import RecordReader


def register(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report",
        help="write the month's 三率 report (HTML with charts, and CSV) from the record or Redis",
    )
    report.add_argument("--month", required=True, help="YYYY-MM, in the city's time zone")
    report.add_argument("--out", type=Path, default=Path("."), help="directory to write into (default: .)")
    report.add_argument("--min-volume", type=int, default=None, help="cases before a unit is ranked")
    report.add_argument(
        "--source",
        choices=("record", "redis"),
        default=None,
        help="count from the record in PostgreSQL (any past month; the default with DATABASE_URL) "
        "or from Redis's counters (with its 每月一题 candidates)",
    )
    report.set_defaults(func=cmd_report)


async def _month_from_record(url: str, month: str, min_volume: int, tz: tzinfo) -> MonthReport:
    record = RecordReader(url, strict=True)
    try:
        return await load_month_from_record(record, month, min_volume, tz)
    finally:
        await record.close()


def cmd_report(args: argparse.Namespace) -> int:
    settings = EvaluationSettings()
    min_volume = args.min_volume if args.min_volume is not None else settings.min_volume
    source = args.source or ("record" if settings.database_url else "redis")
    try:
        if source == "record":
            if not settings.database_url:
                print("hotline report: --source record needs DATABASE_URL", file=sys.stderr)
                return 2
            tz = ZoneInfo(settings.timezone)
            report = asyncio.run(_month_from_record(settings.database_url, args.month, min_volume, tz))
        else:
            report = run_with_redis(
                settings.redis_url, lambda redis: load_month(redis, args.month, min_volume)
            )
    except ValueError as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"hotline report: reading the record failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    html = args.out / f"sanlv-{report.month}.html"
    table = args.out / f"sanlv-{report.month}.csv"
    chronic = args.out / f"meiyueyiti-{report.month}.csv"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report), encoding="utf-8")
        table.write_text(render_csv(report), encoding="utf-8")
        chronic.write_text(render_chronic_csv(report), encoding="utf-8")
    except OSError as exc:
        print(f"hotline report: cannot write into {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {html}, {table} and {chronic}")
    return 0
