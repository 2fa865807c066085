"""`hotline plan --week`: agents per hour (Erlang C and A) and departments' load against capacity for the
next 7 days, from the counts insight keeps in Redis (REDIS_URL). Prints both tables and writes them as CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cliargs import positive_int
from shared.settings import CommonSettings

if TYPE_CHECKING:
    from services.insight.plan import CallTargets, WeekPlan


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan", help="the next week's staffing (Erlang C/A agents per hour) and departments' load vs capacity"
    )
    p.add_argument("--week", action="store_true", required=True, help="plan the 7 days from tomorrow (UTC)")
    # Unset options keep CallTargets' defaults (300 s a call, 80% within 20 s, 120 s of patience).
    p.add_argument(
        "--handle-seconds", type=float, help="mean call time, seconds (default: measured from recent calls)"
    )
    p.add_argument("--level", type=float, help="share of callers answered in time (0-1)")
    p.add_argument("--within", type=float, help="target wait, seconds")
    p.add_argument("--patience", type=float, help="mean wait before a caller hangs up, seconds")
    p.add_argument("--routing", type=Path, default=None, help="routing.yaml (default HOTLINE_ROUTING_PATH)")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the CSV files (default: .)")
    p.add_argument("--today", type=date.fromisoformat, default=None, help=argparse.SUPPRESS)
    p.add_argument("--hours", type=positive_int, default=24, help="hours of the agents table printed")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from services.dispatch.routing import load_routing
    from services.insight.plan import CallTargets
    from services.insight.plan_data import week_plan
    from shared.bus import run_with_redis
    from shared.taxonomy import ConfigError

    settings = CommonSettings()
    given = {"handle_seconds": args.handle_seconds, "within_seconds": args.within}
    given |= {"level": args.level, "patience_seconds": args.patience}
    targets = CallTargets(**{k: v for k, v in given.items() if v is not None})
    for option, value in (("--handle-seconds", targets.handle_seconds), ("--within", targets.within_seconds)):
        if value <= 0:
            return _fail(f"{option} must be above 0")
    if targets.patience_seconds <= 0:
        return _fail("--patience must be above 0")
    if not 0 < targets.level < 1:
        return _fail("--level must be between 0 and 1 (exclusive)")
    try:
        routing = load_routing(args.routing or settings.routing_path)
    except ConfigError as exc:
        return _fail(str(exc))
    today = args.today or datetime.now(UTC).date()
    measure = args.handle_seconds is None
    plan, targets, source = run_with_redis(
        settings.redis_url, lambda redis: week_plan(redis, today, routing, targets, measure)
    )
    if not plan.series_forecast:
        return _fail("no ticket counts in Redis yet: nothing to forecast from")
    print(f"call handling time: {targets.handle_seconds:.0f} s ({source})")
    _print(plan, args.hours, targets)
    agents_csv = args.out / f"plan-agents-{plan.first_day}.csv"
    departments_csv = args.out / f"plan-departments-{plan.first_day}.csv"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        _write_agents(agents_csv, plan)
        _write_departments(departments_csv, plan)
    except OSError as exc:
        return _fail(f"cannot write into {args.out}: {exc.strerror or exc}")
    print(f"wrote {agents_csv} and {departments_csv}")
    return 0


def _print(plan: WeekPlan, hours: int, targets: CallTargets) -> None:
    print(
        f"Call centre, {targets.level:.0%} answered within {targets.within_seconds:.0f} s, "
        f"{targets.handle_seconds:.0f} s a call, callers wait {targets.patience_seconds:.0f} s on average:"
    )
    print(f"{'hour (city time)':<18} {'calls':>7} {'Erlang C':>9} {'Erlang A':>9} {'abandon':>8}")
    for h in plan.hours[:hours]:
        print(
            f"{h.start:%a %m-%d %H:%M}    {h.calls:7.1f} {h.erlang_c.agents:9d} {h.erlang_a.agents:9d} "
            f"{h.erlang_a.abandoned:8.1%}"
        )
    peak = max(plan.hours, key=lambda h: h.erlang_c.agents)
    print(
        f"week: peak {peak.erlang_c.agents} agents (Erlang C) / {peak.erlang_a.agents} (Erlang A) at "
        f"{peak.start:%a %H:%M}; agent-hours {sum(h.erlang_c.agents for h in plan.hours)} (C) / "
        f"{sum(h.erlang_a.agents for h in plan.hours)} (A)"
    )
    print("\nDepartments, expected tickets vs capacity (city days; backlog carried over):")
    print(f"{'department':<22} {'day':<10} {'expected':>8} {'capacity':>8} {'backlog':>8}")
    for d in plan.departments:
        flag = "  SHORT" if d.short else ""
        print(f"{d.department:<22} {d.day}  {d.expected:8.1f} {d.capacity:8.1f} {d.backlog:8.1f}{flag}")


def _write_agents(path: Path, plan: WeekPlan) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "hour_start",
                "calls",
                "agents_erlang_c",
                "service_level_c",
                "occupancy_c",
                "agents_erlang_a",
                "service_level_a",
                "abandoned_a",
                "occupancy_a",
            ]
        )
        for h in plan.hours:
            c, a = h.erlang_c, h.erlang_a
            w.writerow(
                [
                    h.start.isoformat(),
                    f"{h.calls:.2f}",
                    c.agents,
                    f"{c.service_level:.4f}",
                    f"{c.occupancy:.4f}",
                    a.agents,
                    f"{a.service_level:.4f}",
                    f"{a.abandoned:.4f}",
                    f"{a.occupancy:.4f}",
                ]
            )


def _write_departments(path: Path, plan: WeekPlan) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["department", "day", "expected", "capacity", "backlog", "short"])
        for d in plan.departments:
            w.writerow(
                [
                    d.department,
                    d.day,
                    f"{d.expected:.2f}",
                    f"{d.capacity:.2f}",
                    f"{d.backlog:.2f}",
                    int(d.short),
                ]
            )


def _fail(message: str) -> int:
    print(f"hotline plan: {message}", file=sys.stderr)
    return 2
