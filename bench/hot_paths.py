"""The per-ticket hot paths of insight and dispatch, this tree against a git revision, in one run.

    .venv/bin/python bench/hot_paths.py [--baseline REV] [--rounds 3] [--tickets 8000]

Each round runs the same measurement in two fresh processes, one importing this tree and one importing
`git archive REV` (default: main), and prints CPU time per ticket (process time, so another job on the
machine slows the wall clock but not the figure much) and a digest of the outputs, which must agree:
- **insight clustering**: `Clusterer.add` in batches of 256, as the service feeds it: the Teddy Cup
  messages ($HOTLINE_DATASETS, default /work/shared/datasets) cycled to --tickets, title and text as one
  phone transcript, all received within the window (so every cluster is active); the digest is the
  partition of ticket ids into clusters;
- **dispatch assignment**: `handlers.on_classified` over the default routing table in batches of 100,
  each batch with a fresh supply snapshot, as the worker runs it; now is a Sunday night (the office
  departments closed) and a Monday morning; the digest covers every chosen department and reason.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def teddy_texts() -> list[tuple[str, str | None]]:
    root = Path(os.environ.get("HOTLINE_DATASETS", "/work/shared/datasets"))
    with (root / "teddycup2020c" / "hotspot_messages.csv").open(encoding="utf-8") as f:
        return [(f"{r['title']}\n{r['text']}"[:2000], r["location"] or None) for r in csv.DictReader(f)]


def measure_clusters(tickets: int) -> dict[str, Any]:
    from services.insight.clusters import Clusterer, Message

    texts = teddy_texts()
    start = datetime(2026, 11, 28, 12, tzinfo=UTC)
    messages = [
        Message(
            id=f"t{i}",
            text=texts[i % len(texts)][0],
            created_at=start + timedelta(milliseconds=i),
            location=texts[i % len(texts)][1],
        )
        for i in range(tickets)
    ]
    clusterer = Clusterer()
    began = time.process_time()
    for i in range(0, tickets, 256):
        clusterer.add(messages[i : i + 256])
    cpu = time.process_time() - began
    partition = sorted(sorted(m.id for m in c.members) for c in clusterer.clusters.values())
    return {"ms": 1000 * cpu / tickets, "clusters": len(partition), "digest": _digest(partition)}


def measure_dispatch(tickets: int) -> dict[str, Any]:
    from services.dispatch import handlers
    from services.dispatch.assign import Counts
    from services.dispatch.routing import load_routing
    from services.dispatch.state import Snapshot
    from shared.events import Place, TicketClassified

    table = load_routing(ROOT / "shared" / "data" / "routing.yaml")
    rng = random.Random(1)
    categories = sorted(
        {r.category for r in table.rules} | {c for d in table.departments for c in d.categories}
    )
    districts = [None, *sorted({d for dept in table.departments for d in dept.districts})]
    urgencies = ["general", "general", "general", "complex", "utilities", "emergency"]
    results: list[str] = []
    cpu = 0.0
    for now in (datetime(2026, 11, 29, 19, 30, tzinfo=UTC), datetime(2026, 11, 30, 2, 15, tzinfo=UTC)):
        events = [
            TicketClassified(
                event_id=f"c-{i}",
                ticket_id=f"T{i}",
                occurred_at=now,
                category=rng.choice(categories),
                confidence=0.9,
                urgency=rng.choice(urgencies),
                place=Place(district=rng.choice(districts)),
                model_version="m",
                received_at=now - timedelta(seconds=rng.uniform(0, 5)),
            )
            for i in range(tickets // 2)
        ]
        depth = {d.id: rng.randint(0, 3 * d.capacity) for d in table.departments}
        learned = {d.id: Counts(rng.randint(0, 50), rng.randint(0, 10)) for d in table.departments}
        for i in range(0, len(events), 100):
            batch = events[i : i + 100]
            began = time.process_time()
            ahead = {}
            counts = {}
            for e in batch:
                demand = handlers.classified_demand(e)
                for d in table.departments:
                    ahead[(d.id, demand.feedback_due.timestamp())] = depth[d.id]
                    counts[(d.id, demand.category, demand.district)] = learned[d.id]
            supply = Snapshot(ahead, counts)
            out = [
                handlers.on_classified(e, table=table, supply=supply, now=now, previous=None) for e in batch
            ]
            cpu += time.process_time() - began
            for effects in out:
                fields = effects.writes[0].fields
                results.append(f"{fields.get('department')}|{fields.get('dispatch_reason')}")
    return {"ms": 1000 * cpu / tickets, "digest": _digest(results)}


def _digest(value: object) -> str:
    return hashlib.sha1(json.dumps(value).encode()).hexdigest()[:12]


def child(tickets: int) -> None:
    print(json.dumps({"clusters": measure_clusters(tickets), "dispatch": measure_dispatch(tickets)}))


def run(tree: Path, tickets: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hot_paths.py"), "--child", str(tickets)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"{tree}: the measurement failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tickets", type=int, default=8000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="hot-paths-") as tmp:
        base = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", args.baseline], cwd=ROOT, check=True, capture_output=True
        ).stdout
        archive_path = base / "tree.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(base / "tree", filter="data")
        # The baseline runs this script (the measurement must be the same), against its own modules.
        (base / "tree" / "bench" / "hot_paths.py").write_text(Path(__file__).read_text())
        trees = {"baseline": base / "tree", "this tree": ROOT}
        figures: dict[str, dict[str, list[float]]] = {n: {"clusters": [], "dispatch": []} for n in trees}
        digests: dict[str, dict[str, set[str]]] = {n: {"clusters": set(), "dispatch": set()} for n in trees}
        print(f"# hot paths: {args.tickets} tickets, baseline {args.baseline}, load {os.getloadavg()}")
        for r in range(args.rounds):
            for name, tree in trees.items():
                result = run(tree, args.tickets)
                for part in ("clusters", "dispatch"):
                    figures[name][part].append(result[part]["ms"])
                    digests[name][part].add(result[part]["digest"])
                print(
                    f"round {r + 1} {name:9s} clustering {result['clusters']['ms']:.3f} ms CPU/ticket"
                    f" ({result['clusters']['clusters']} clusters), dispatch {result['dispatch']['ms']:.3f}"
                )
        print(f"\n  {'path':12s} {'baseline':>9s} {'this tree':>10s} {'ratio':>6s}  same output")
        for part in ("clusters", "dispatch"):
            old = statistics.median(figures["baseline"][part])
            new = statistics.median(figures["this tree"][part])
            same = len(digests["baseline"][part] | digests["this tree"][part]) == 1
            print(f"  {part:12s} {old:9.3f} {new:10.3f} {new / old:6.2f}  {same}")
        print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
