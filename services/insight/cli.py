"""`hotline hotspots | forecast | chronic`: insight's models run offline on a CSV of past messages.

The CSV has columns `id, title, text, created_at, location` (ISO times; `likes` and `user` are used when
present). Progress goes to stderr; with `--json` the last line of stdout is one JSON document.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path

from shared.cliargs import positive_int

REQUIRED = ("id", "title", "text", "created_at", "location")
HOTSPOT_DATA = "teddycup2020c/hotspot_messages.csv"


def dataset_path(relative: str) -> Path:
    """A file of the team's datasets: under $HOTLINE_DATASETS, else ../shared/datasets beside the repo,
    else /work/shared/datasets (where the development machines keep them)."""
    import os

    roots = [os.environ.get("HOTLINE_DATASETS"), Path(__file__).resolve().parents[3] / "shared" / "datasets"]
    for root in [*(Path(r) for r in roots if r), Path("/work/shared/datasets")]:
        if (root / relative).is_file():
            return root / relative
    return Path("/work/shared/datasets") / relative


class InputError(ValueError):
    """A file the tools cannot read: the message says what is wrong and where."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    hot = subparsers.add_parser("hotspots", help="the top issues (clusters of similar messages) in a CSV")
    _data_args(hot)
    hot.add_argument("--top", type=int, default=5, metavar="K", help="how many issues (default 5)")
    hot.set_defaults(func=cmd_hotspots)

    fc = subparsers.add_parser("forecast", help="next-7-day volume, backtested against seasonal naive")
    _data_args(fc)
    fc.add_argument("--by-location", action="store_true", help="also per location with enough history")
    fc.set_defaults(func=cmd_forecast)

    ch = subparsers.add_parser("chronic", help="每月一题 candidates: problems recurring across weeks")
    _data_args(ch)
    ch.add_argument("--month", required=True, help="YYYY-MM")
    ch.add_argument("--top", type=positive_int, default=10, metavar="K")
    ch.add_argument("--weeks", type=positive_int, default=12, help="weeks looked back from the month's end")
    ch.set_defaults(func=cmd_chronic)

    from services.insight import plan_cli

    plan_cli.register(subparsers)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, metavar="FILE.csv")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line (the last)")


def _fail(message: str) -> int:
    print(f"hotline: error: {message}", file=sys.stderr)
    return 2


def read_messages(path: Path) -> list:  # type: ignore[type-arg]
    """Messages in time order; raises InputError naming the file, row or column at fault."""
    from services.insight.clusters import Message

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                have = ", ".join(reader.fieldnames or [])
                raise InputError(f"{path}: missing column(s) {', '.join(missing)} (have: {have})")
            out = []
            for n, row in enumerate(reader, start=2):
                try:
                    created = datetime.fromisoformat((row["created_at"] or "").strip())
                except ValueError:
                    raise InputError(
                        f"{path}:{n}: created_at {row['created_at']!r} is not an ISO time"
                    ) from None
                if created.tzinfo is not None:  # compare like with like: times as written, without zone
                    created = created.replace(tzinfo=None)
                out.append(
                    Message(
                        id=row["id"],
                        title=row["title"] or "",
                        text=row["text"] or "",
                        created_at=created,
                        location=(row["location"] or "").strip() or None,
                        likes=_int(row.get("likes")),
                        author=(row.get("user") or "").strip() or None,
                    )
                )
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    out.sort(key=lambda m: m.created_at)
    return out


def _int(value: str | None) -> int:
    try:
        return int(float(value)) if value not in (None, "") else 0
    except ValueError:
        return 0


def _load(args: argparse.Namespace) -> list | None:  # type: ignore[type-arg]
    started = time.perf_counter()
    try:
        messages = read_messages(args.data)
    except InputError as exc:
        print(f"hotline: error: {exc}", file=sys.stderr)
        return None
    print(f"read {len(messages)} messages in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return messages


def cluster_messages(messages: list, batch: int = 64):  # type: ignore[no-untyped-def,type-arg]
    from services.insight.clusters import Clusterer

    clusterer = Clusterer()
    for i in range(0, len(messages), batch):
        clusterer.add(messages[i : i + batch])
        if (i // batch) % 20 == 0:
            print(f"  clustered {min(i + batch, len(messages))}/{len(messages)}", file=sys.stderr)
    merged = clusterer.consolidate()
    print(f"{len(clusterer.clusters)} clusters ({merged} merged)", file=sys.stderr)
    return clusterer


def cmd_hotspots(args: argparse.Namespace) -> int:
    if args.top < 1:
        return _fail("--top must be at least 1")
    messages = _load(args)
    if messages is None:
        return 2
    started = time.perf_counter()
    issues = cluster_messages(messages).issues(top=args.top)
    print(f"found {len(issues)} issues in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    if not args.json:
        for rank, issue in enumerate(issues, start=1):
            print(
                f"{rank:>2}. heat {issue.heat:7.2f}  {len(issue.message_ids):>3} messages  "
                f"{issue.start:%Y-%m-%d}..{issue.end:%Y-%m-%d}  {issue.label}"
            )
    print(json.dumps([i.as_json() for i in issues], ensure_ascii=False))
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from services.insight.forecast import dense_daily, forecast

    messages = _load(args)
    if messages is None:
        return 2
    if not messages:
        return _fail(f"{args.data}: no messages")
    groups: dict[str, Counter[date]] = {"all": Counter(m.created_at.date() for m in messages)}
    if args.by_location:
        for m in messages:
            groups.setdefault(m.location or "-", Counter())[m.created_at.date()] += 1
    # The span of steady flow: a few stray messages before or after it would pad the series with zeros.
    start, last = steady_span(groups["all"])
    result = {}
    out = sys.stderr if args.json else sys.stdout
    for name, counts in groups.items():
        daily = dense_daily(counts, start, last)
        if sum(daily) < 5 * len(daily) / 7 and name != "all":
            continue  # under ~5 a week: no forecast worth staffing on
        fc = forecast(daily, last)
        result[name] = fc.as_json()
        if (bt := fc.backtest) is not None:
            print(
                f"{name}: next 7 days {sum(fc.point):.0f} tickets "
                f"(daily 10-90% bands summed: {sum(fc.lower):.0f}-{sum(fc.upper):.0f}); "
                f"backtest over {bt.origins} weeks: "
                f"Holt-Winters MAE {bt.model_mae:.2f}/day (WAPE {bt.model_wape:.1%}) vs seasonal naive "
                f"MAE {bt.naive_mae:.2f}/day (WAPE {bt.naive_wape:.1%})",
                file=out,
            )
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0


def steady_span(counts: Counter[date]) -> tuple[date, date]:
    """The first and last days of the longest run of days with no gap longer than three days."""
    days = sorted(counts)
    best, run_start = (days[0], days[0]), days[0]
    for prev, day in zip(days, [*days[1:], None], strict=True):
        if day is None or (day - prev).days > 3:
            if (prev - run_start) > (best[1] - best[0]):
                best = (run_start, prev)
            if day is not None:
                run_start = day
    return best


def cmd_chronic(args: argparse.Namespace) -> int:
    from services.insight.chronic import from_clusters, rank

    try:
        year, month = (int(p) for p in args.month.split("-"))
        date(year, month, 1)
    except ValueError:
        return _fail(f"--month {args.month!r} is not YYYY-MM")
    messages = _load(args)
    if messages is None:
        return 2
    clusterer = cluster_messages(messages)
    problems = from_clusters(clusterer)
    candidates = rank(problems, year, month, weeks=args.weeks)[: args.top]
    if not args.json:
        for i, c in enumerate(candidates, start=1):
            print(
                f"{i:>2}. score {c.score:.3f}  {c.active_weeks}/{c.weeks} weeks  {c.tickets} messages  "
                f"peak week {c.peak_week_share:.0%}  {c.label}"
            )
    print(json.dumps([c.as_json() for c in candidates], ensure_ascii=False))
    return 0
