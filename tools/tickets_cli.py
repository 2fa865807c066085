"""`hotline tickets export`: the record's open-data export (see tools/opendata.py for what is left out)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.settings import CommonSettings


def _moment(value: str) -> datetime:
    """An ISO 8601 date or datetime; without an offset it is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date or datetime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def register(sub: Any) -> None:
    from tools.opendata import FORMATS

    tickets = sub.add_parser("tickets", help="the record of tickets in PostgreSQL (DATABASE_URL)")
    actions = tickets.add_subparsers(dest="tickets_command", required=True)
    export = actions.add_parser(
        "export",
        help="write the tickets received in [--from, --to) as open data: no caller, no text, no address",
    )
    export.add_argument("--from", dest="start", type=_moment, required=True, help="e.g. 2026-01-01")
    export.add_argument("--to", dest="end", type=_moment, required=True, help="exclusive, e.g. 2026-02-01")
    export.add_argument("--format", choices=FORMATS, default="csv")
    export.add_argument(
        "--out", type=Path, default=None, help="file to write (default: tickets-FROM-TO.FORMAT)"
    )
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from tools.db_cli import _reason
    from tools.opendata import export

    if args.start >= args.end:
        print("hotline tickets export: --from must be before --to", file=sys.stderr)
        return 2
    url = CommonSettings().database_url
    if not url:
        print("hotline tickets export: DATABASE_URL is not set", file=sys.stderr)
        return 2
    out: Path = args.out or Path(f"tickets-{args.start:%Y%m%d}-{args.end:%Y%m%d}.{args.format}")
    try:
        count = asyncio.run(export(url, args.start, args.end, args.format, out))
    except OSError as exc:
        if exc.filename is not None:
            print(f"hotline tickets export: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"hotline tickets export: reading the database failed: {_reason(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"hotline tickets export: reading the database failed: {_reason(exc)}", file=sys.stderr)
        return 1
    print(f"wrote {count} tickets to {out}")
    return 0
