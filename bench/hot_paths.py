"""The per-ticket hot paths of insight and dispatch, this tree against a git revision, in one run.

    .venv/bin/python bench/hot_paths.py [--baseline REV] [--rounds 3] [--tickets 8000]

Each round runs the same measurement in two fresh processes, one importing this tree and one importing
`git archive REV` (default: main), and prints CPU time per ticket (process time, so another job on the
machine slows the wall clock but not the figure much) and a digest of the outputs, which must agree:
- **insight clustering**: `Clusterer.add` in batches of 256, as the service feeds it: the Teddy Cup
  messages ($HOTLINE_DATASETS, default /work/shared/datasets) cycled to --tickets, title and text as one
  phone transcript, all received within the window (so every cluster is active); CPU per message over the
  last quarter of the batches; the digest is the partition of ticket ids into clusters. "clusters, many":
  4 x --tickets messages, each text after the first pass given a random opening, so that the clusters
  number tens of thousands;
- **dispatch assignment**: `handlers.on_classified` over the default routing table in batches of 100,
  each batch with a fresh supply snapshot, as the worker runs it; now is a Sunday night (the office
  departments closed) and a Monday morning; the digest covers every chosen department and reason;
- **dispatch snapshot**: `state.read_snapshot` (the supply read before each batch) for tickets like the
  above in batches of 100, against an embedded Redis holding 2,000 queued tickets; the digest covers
  every count read.
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

from tools.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]


def teddy_texts() -> list[tuple[str, str | None]]:
    root = Path(os.environ.get("HOTLINE_DATASETS", "/work/shared/datasets"))
    with (root / "teddycup2020c" / "hotspot_messages.csv").open(encoding="utf-8") as f:
        return [(f"{r['title']}\n{r['text']}"[:2000], r["location"] or None) for r in csv.DictReader(f)]


def measure_clusters(tickets: int, distinct: bool = False) -> dict[str, Any]:
    """`distinct`: past the first pass over the data each text gets a new opening of 60 random characters,
    so nearly every message starts a cluster (a long window of a big city); else texts repeat."""
    from services.insight.clusters import Clusterer, Message

    texts = teddy_texts()
    rng = random.Random(3)
    start = datetime(2026, 11, 28, 12, tzinfo=UTC)
    messages = []
    for i in range(tickets):
        text, location = texts[i % len(texts)]
        if distinct and i >= len(texts):
            text = "".join(chr(0x4E00 + rng.randrange(20_000)) for _ in range(60)) + text[60:]
        messages.append(
            Message(id=f"t{i}", text=text, created_at=start + timedelta(milliseconds=i), location=location)
        )
    clusterer = Clusterer()
    cpu: list[float] = []
    for i in range(0, tickets, 256):
        began = time.process_time()
        clusterer.add(messages[i : i + 256])
        cpu.append(time.process_time() - began)
    partition = sorted(sorted(m.id for m in c.members) for c in clusterer.clusters.values())
    last = cpu[-len(cpu) // 4 :]  # the last quarter: as many clusters as the run gets to
    return {
        "ms": 1000 * sum(last) / (256 * len(last)),
        "clusters": len(partition),
        "digest": _digest(partition),
    }


def _events(table: Any, n: int, now: datetime, rng: random.Random) -> list[Any]:
    """Classified tickets over every category and district the table knows, received in the last 5 s."""
    from shared.events import Place, TicketClassified

    categories = sorted(
        {r.category for r in table.rules} | {c for d in table.departments for c in d.categories}
    )
    districts = [None, *sorted({d for dept in table.departments for d in dept.districts})]
    urgencies = ["general", "general", "general", "complex", "utilities", "emergency"]
    return [
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
        for i in range(n)
    ]


def measure_dispatch(tickets: int) -> dict[str, Any]:
    from services.dispatch import handlers
    from services.dispatch.assign import Counts
    from services.dispatch.routing import load_routing
    from services.dispatch.state import Snapshot

    table = load_routing(ROOT / "shared" / "data" / "routing.yaml")
    rng = random.Random(1)
    results: list[str] = []
    cpu = 0.0
    for now in (datetime(2026, 11, 29, 19, 30, tzinfo=UTC), datetime(2026, 11, 30, 2, 15, tzinfo=UTC)):
        events = _events(table, tickets // 2, now, rng)
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


def measure_snapshot(tickets: int, url: str) -> dict[str, Any]:
    import asyncio

    import redis as sync_redis

    from services.dispatch import handlers, state
    from services.dispatch.routing import load_routing
    from shared.bus import redis_client

    table = load_routing(ROOT / "shared" / "data" / "routing.yaml")
    rng = random.Random(2)
    events = _events(table, tickets, datetime(2026, 11, 30, 2, 15, tzinfo=UTC), rng)
    demands = [handlers.classified_demand(e) for e in events]
    setup = sync_redis.Redis.from_url(url)
    setup.flushdb()
    for d in table.departments:  # 2,000 open tickets, due around the demands' deadlines
        queued = rng.sample(demands, 2000 // len(table.departments))
        setup.zadd(
            state.queue(d.id),
            {
                f"{d.id}-{i}": q.feedback_due.timestamp() + rng.uniform(-3e5, 3e5)
                for i, q in enumerate(queued)
            },
        )
        setup.hset(
            state.ACCEPTANCE, state.acceptance_field(d.id, "environment", None, "a"), rng.randint(1, 50)
        )

    async def read_all() -> tuple[float, list[object]]:
        client = redis_client(url)
        batches = [demands[i : i + 100] for i in range(0, len(demands), 100)]
        began = time.process_time()
        supplies = [await state.read_snapshot(client, table, batch) for batch in batches]
        cpu = time.process_time() - began
        await client.aclose()
        seen: list[object] = []
        for batch, supply in zip(batches, supplies, strict=True):
            for demand in batch:
                for dept in state.departments_for(table, demand):
                    counts = supply.acceptance(dept, demand.category, demand.district)
                    seen.append((supply.ahead(dept, demand.feedback_due), counts.accepts, counts.rejects))
        return cpu, seen

    cpu, seen = asyncio.run(read_all())
    return {"ms": 1000 * cpu / tickets, "digest": _digest(seen)}


def _digest(value: object) -> str:
    return hashlib.sha1(json.dumps(value).encode()).hexdigest()[:12]


PARTS = ("clusters", "clusters, many", "dispatch", "snapshot")


def child(tickets: int, url: str) -> None:
    result = {
        "clusters": measure_clusters(tickets),
        "clusters, many": measure_clusters(4 * tickets, distinct=True),
        "dispatch": measure_dispatch(tickets),
        "snapshot": measure_snapshot(tickets, url),
    }
    print(json.dumps(result))


def run(tree: Path, tickets: int, url: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hot_paths.py"), "--child", str(tickets), "--redis-url", url],
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
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.redis_url)
        return
    with tempfile.TemporaryDirectory(prefix="hot-paths-") as tmp, EmbeddedRedis(appendfsync="no") as server:
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
        figures: dict[str, dict[str, list[float]]] = {n: {p: [] for p in PARTS} for n in trees}
        digests: dict[str, dict[str, set[str]]] = {n: {p: set() for p in PARTS} for n in trees}
        print(f"# hot paths: {args.tickets} tickets, baseline {args.baseline}, load {os.getloadavg()}")
        for r in range(args.rounds):
            for name, tree in trees.items():
                result = run(tree, args.tickets, server.url)
                for part in PARTS:
                    figures[name][part].append(result[part]["ms"])
                    digests[name][part].add(result[part]["digest"])
                counts = [result[part]["clusters"] for part in ("clusters", "clusters, many")]
                print(
                    f"round {r + 1} {name:9s} ms CPU/ticket: "
                    + ", ".join(f"{part} {result[part]['ms']:.3f}" for part in PARTS)
                    + f" ({counts[0]} and {counts[1]} clusters)"
                )
        print(f"\n  {'path':15s} {'baseline':>9s} {'this tree':>10s} {'ratio':>6s}  same output")
        for part in PARTS:
            old = statistics.median(figures["baseline"][part])
            new = statistics.median(figures["this tree"][part])
            same = len(digests["baseline"][part] | digests["this tree"][part]) == 1
            print(f"  {part:15s} {old:9.3f} {new:10.3f} {new / old:6.2f}  {same}")
        print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
