"""`hotline db upgrade|current`: the system of record's schema (the deploy init Job runs `upgrade`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from shared.settings import CommonSettings


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="the PostgreSQL schema: apply migrations, show the version (DATABASE_URL)")
    actions = db.add_subparsers(dest="db_command", required=True)
    upgrade = actions.add_parser("upgrade", help="apply every migration not yet applied")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(func=cmd_upgrade)
    current = actions.add_parser("current", help="print the applied revision and the newest one")
    current.set_defaults(func=cmd_current)


def _url() -> str | None:
    url = CommonSettings().database_url
    if not url:
        print("hotline: error: DATABASE_URL is not set", file=sys.stderr)
    return url


def cmd_upgrade(args: argparse.Namespace) -> int:
    from shared.db import migrate

    url = _url()
    if url is None:
        return 2
    try:
        migrate.upgrade(url, args.revision)
    except Exception as exc:
        print(f"hotline: error: migrating the database failed: {_reason(exc)}", file=sys.stderr)
        return 1
    print(f"database at {asyncio.run(migrate.current(url))}")
    return 0


def cmd_current(args: argparse.Namespace) -> int:
    from shared.db import migrate

    url = _url()
    if url is None:
        return 2
    try:
        applied = asyncio.run(migrate.current(url))
    except Exception as exc:
        print(f"hotline: error: reading the database failed: {_reason(exc)}", file=sys.stderr)
        return 1
    head = migrate.head()
    print(f"current: {applied or '(none)'}  head: {head}" + ("" if applied == head else "  (upgrade needed)"))
    return 0 if applied == head else 3


def _reason(exc: BaseException) -> str:
    """The first line of the deepest cause: no SQL, no parameters, no URL (it may hold a password)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
