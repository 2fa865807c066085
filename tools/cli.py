"""The `hotline` command: run the system, demo it, and the operators' tools each service registers."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.table import Table

from shared.cliargs import positive_int
from tools.runner import SERVICES, Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description="Citizens' hotline platform")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start every service (embedded Redis unless REDIS_URL is set)")
    _stack_args(up)
    up.add_argument(
        "--demo", type=int, default=0, metavar="N", help="post N sample calls once everything is up"
    )
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser(
        "demo", help="start everything, post N sample calls, check all are dispatched, stop"
    )
    _stack_args(demo)
    demo.add_argument("--tickets", type=positive_int, default=200)
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every ticket")
    demo.set_defaults(func=cmd_demo)

    init = sub.add_parser("init", help="create streams and consumer groups (the deploy init Job runs this)")
    init.set_defaults(func=cmd_init)

    asyncapi = sub.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of the events (the contract)")
    asyncapi.set_defaults(func=cmd_asyncapi)

    for register in _plugins():
        register(sub)

    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (RedisConnectionError, RedisTimeoutError) as exc:  # down, refusing us, or REDIS_URL malformed
        from shared.settings import CommonSettings

        print(
            f"hotline: error: Redis at {_redacted(CommonSettings().redis_url)}: {exc} (check REDIS_URL)",
            file=sys.stderr,
        )
        return 1
    return code


def _plugins() -> list:  # type: ignore[type-arg]
    """Each service's own subcommands (model training, reports, DLQ tools...), when the service has them."""
    import importlib

    found = []
    for module in (
        "services.classifier.cli",
        "services.console.cli",
        "services.dispatch.cli",
        "services.evaluation.cli",
        "services.insight.cli",
        "tools.dlq_cli",
        "tools.db_cli",
        "tools.tickets_cli",
        "tools.contract_doc",
    ):
        try:
            found.append(importlib.import_module(module).register)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return found


def _stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-port",
        type=int,
        default=int(os.environ.get("HOTLINE_BASE_PORT", "8080")),
        help="intake listens here, the workers on the next ports",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="embedded Redis data directory; the embedded PostgreSQL's goes inside it, in postgres/"
        " (default: temporary ones)",
    )
    p.add_argument("--log-dir", type=Path, default=Path(".hotline/logs"))


def _stack(args: argparse.Namespace) -> Stack:
    return Stack(
        redis_url=os.environ.get("REDIS_URL") or None,
        database_url=os.environ.get("DATABASE_URL") or None,
        base_port=args.base_port,
        data_dir=args.data_dir,
        log_dir=args.log_dir,
    )


def _print_endpoints(console: Console, stack: Stack) -> None:
    table = Table(title="Hotline is up")
    table.add_column("service")
    table.add_column("listens on")
    for service in SERVICES:
        table.add_row(service, f"{stack.url_of(service)}  (/metrics /livez /readyz)")
    table.add_row("redis", _redacted(stack.redis_url or "") + ("  (embedded)" if stack.embedded else ""))
    table.add_row(
        "postgresql", _redacted(stack.database_url or "") + ("  (embedded)" if stack.embedded_pg else "")
    )
    table.add_row("logs", str(stack.log_dir))
    console.print(table)
    console.print(
        f"Post a call: POST {stack.url_of('intake')}/v1/webhooks/telephony (Standard Webhooks signed)"
    )
    if "console" in stack.services:
        console.print(
            f"Console: {stack.url_of('console')} (development users: operator / hotline-dev-operator,"
            " supervisor / hotline-dev-supervisor, <department id> / hotline-dev-<department id>)"
        )


def _redacted(url: str) -> str:
    """The URL without its password (REDIS_URL may carry one; the terminal may be a log)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL urllib can take apart: none of it is shown, it may hold a password
        return "(a malformed URL)"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def cmd_up(args: argparse.Namespace) -> int:
    console = Console()
    stack = _stack(args)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with stack:
        _print_endpoints(console, stack)
        if args.demo:
            code = _run_demo(console, stack, args.demo, timeout=120.0)
            if code:
                return code
        console.print("Press Ctrl-C to stop.")
        while not stopping:
            for service, process in stack.processes.items():
                if process.poll() is not None:
                    console.print(f"[red]{service} exited with code {process.returncode}; stopping[/red]")
                    return 1
            time.sleep(0.5)
        console.print("Stopping...")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    console = Console()
    with _stack(args) as stack:
        _print_endpoints(console, stack)
        return _run_demo(console, stack, args.tickets, timeout=args.timeout)


def _run_demo(console: Console, stack: Stack, n: int, timeout: float) -> int:
    from services.intake.app import IntakeSettings
    from tools.demo import make_calls, post_calls, summary, wait_dispatched

    secret = IntakeSettings().webhook_secrets[0]
    calls = make_calls(n)
    tickets = asyncio.run(post_calls(stack.url_of("intake"), secret, calls, console=console))
    lost_at_intake = [c["call_id"] for c in calls if c["call_id"] not in tickets]
    assert stack.redis_url is not None
    outcome = asyncio.run(wait_dispatched(stack.redis_url, list(tickets.values()), timeout))
    summary(console, outcome)
    if lost_at_intake or outcome.missing:
        console.print(
            f"[red]{len(outcome.missing)} ticket(s) not dispatched after {outcome.seconds:.1f}s, "
            f"{len(lost_at_intake)} call(s) not accepted[/red]"
        )
        for name in (lost_at_intake + outcome.missing)[:50]:
            console.print(f"  missing: {name}")
        return 1
    console.print(
        f"[green]All {n} tickets dispatched and tracked by evaluation "
        f"({outcome.seconds:.1f}s after the last post).[/green]"
    )
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    import json

    from tools.asyncapi import document

    print(json.dumps(document(), ensure_ascii=False, indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from shared.bus import init_streams, run_with_redis
    from shared.settings import CommonSettings

    created = run_with_redis(CommonSettings().redis_url, init_streams)
    for stream, group in created:
        print(f"created group {group} on {stream}")
    print(f"streams and groups ready ({len(created)} created now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
