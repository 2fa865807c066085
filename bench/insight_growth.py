"""Insight's CPU per ticket as the tickets it has seen grow: is its cost constant per ticket?

    .venv/bin/python bench/insight_growth.py [--tickets 100000] [--slice 10000] [--refresh-every 10000]
        [--baseline DIR ...]

Drives insight in this process against its own embedded Redis (no AOF), as its worker does at saturation:
tickets.classified read in batches of 100 (XREADGROUP, then `Worker.process`: decode, `Insight.handle`,
commit), the ticket hashes and `by_created` as intake and the classifier leave them (written before each
batch, not counted), the background pass `Insight.refresh` every `--refresh-every` tickets (30 s at 770
tickets/s is about 23,000), and its hourly part (forecasts, 每月一题 candidates, the plan) alone at the end
of each slice. The tickets are
pipeline.py's: Teddy Cup texts in turn (each repeats every 4,326 tickets, as at saturation), half with
coordinates, the district located by the classifier's gazetteer, a category per text; received 1 ms apart.

For each slice of `--slice` tickets it prints, as CPU ms (this process, threads included; Redis apart):
- `batch`: the batches' CPU per ticket (read, decode, handle, commit);
- `pass`: one background pass (mean of the slice's), and `hourly`: the hourly part once;
- `/ticket`: the batches' and the passes' CPU over the slice's tickets: what the worker costs a ticket at
  saturation (the hourly part is left out: at 1,000 tickets/s an hour holds 3.6 million tickets).
A flat column is a cost constant per ticket; one that grows slice after slice scans what grew.
With `--baseline DIR` (a tree, e.g. `git archive REV | tar -x -C DIR`) each tree runs in turn, from its
own directory with this script's copy, and a last table gives each slice's `/ticket` of this tree over
the baseline's: the comparison is within one run. A line says so if a tree made anything different (the
problems, pending tallies, episodes, emerging issues, candidates, alerts and problem events: digests).
Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
BATCH = 100


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def one_pass(tickets: int, slice_size: int, refresh_every: int) -> dict[str, Any]:
    """Run this tree's insight over `tickets`; each slice's figures, and a digest of what it made."""
    from prometheus_client import CollectorRegistry

    from bench.pipeline import calls, load_texts
    from services.classifier.place import locate
    from services.insight.app import Insight, InsightSettings
    from shared import streams
    from shared.bus import init_streams, redis_client
    from shared.codec import DATA_FIELD, pack
    from shared.events import Place, TicketClassified
    from shared.settings import CommonSettings
    from shared.store import keys
    from shared.taxonomy import load_taxonomy
    from shared.worker import Consumer, Worker
    from tools.embedded import EmbeddedRedis

    codes = load_taxonomy(CommonSettings().taxonomy_path).codes()
    texts = load_texts()
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    with EmbeddedRedis() as server:
        assert server.process is not None
        redis_pid = server.process.pid
        # The hourly part is timed apart, at the end of each slice, not inside the passes.
        settings = InsightSettings(redis_url=server.url, consumer_name="bench", forecast_refresh_seconds=1e9)
        redis = redis_client(settings.redis_url)
        await init_streams(redis)
        insight = Insight(settings, redis, CollectorRegistry())
        insight._forecast_at = time.monotonic()
        consumer = Consumer(streams.CLASSIFIED, streams.INSIGHT, TicketClassified, insight.handle)
        worker = Worker(service="insight", settings=settings, redis=redis, consumers=[consumer])
        out: list[dict[str, float]] = []
        figures = {"batch": 0.0, "batch_redis": 0.0, "passes": 0.0, "pass": 0.0, "pass_redis": 0.0}
        for first in range(0, tickets, BATCH):
            batch = calls(BATCH, f"g{first}", texts[first % len(texts) :] + texts, random.Random(first))
            events = []
            async with redis.pipeline(transaction=False) as pipe:
                for n, call in enumerate(batch):
                    at = start + timedelta(milliseconds=first + n)
                    ticket_id = f"T-{first + n:08d}"
                    text = call["transcript"]
                    where = call.get("location") or {}
                    place = locate(text, where.get("lat"), where.get("lon"))
                    category = codes[zlib.crc32(text.encode()) % len(codes)]
                    fields = {"status": "classified", "channel": "phone", "text": text, "rev": "2"}
                    fields |= {"received_at": at.isoformat(), "category": category}
                    if place.district:
                        fields["district"] = place.district
                    pipe.hset(keys.ticket(ticket_id), mapping=fields)
                    pipe.zadd(keys.by_created, {ticket_id: at.timestamp()})
                    event = TicketClassified(
                        event_id=f"{ticket_id}:classified",
                        ticket_id=ticket_id,
                        occurred_at=at,
                        category=category,
                        confidence=0.9,
                        place=Place(district=place.district),
                        model_version="bench",
                        received_at=at,
                    )
                    pipe.xadd(streams.CLASSIFIED, {DATA_FIELD: pack(event)})
                    events.append(event)
                await pipe.execute()
            cpu0, redis0 = time.process_time(), _cpu(redis_pid)
            reply = await redis.xreadgroup(streams.INSIGHT, "bench", {streams.CLASSIFIED: ">"}, count=BATCH)
            await worker.process(consumer, reply[0][1])
            figures["batch"] += time.process_time() - cpu0
            figures["batch_redis"] += _cpu(redis_pid) - redis0
            done = first + BATCH
            now = start + timedelta(milliseconds=done)
            if done % refresh_every == 0:
                cpu0, redis0 = time.process_time(), _cpu(redis_pid)
                await insight.refresh(now)
                figures["passes"] += 1
                figures["pass"] += time.process_time() - cpu0
                figures["pass_redis"] += _cpu(redis_pid) - redis0
            if done % slice_size == 0:
                cpu0, redis0 = time.process_time(), _cpu(redis_pid)
                await insight.update_forecasts(now.date())
                await insight.update_chronic(now)
                await insight.update_plan(now)
                row = {
                    "seen": done,
                    "batch": figures["batch"] * 1000 / slice_size,
                    "batch_redis": figures["batch_redis"] * 1000 / slice_size,
                    "pass": figures["pass"] * 1000 / figures["passes"],
                    "pass_redis": figures["pass_redis"] * 1000 / figures["passes"],
                    "hourly": (time.process_time() - cpu0) * 1000,
                    "hourly_redis": (_cpu(redis_pid) - redis0) * 1000,
                }
                row["per_ticket"] = (figures["batch"] + figures["pass"]) * 1000 / slice_size
                out.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                figures = {"batch": 0.0, "batch_redis": 0.0, "passes": 0.0, "pass": 0.0, "pass_redis": 0.0}
        made = await _made(redis, keys.chronic(f"{now:%Y-%m}"))
        await redis.aclose()
    return {"slices": out, "made": made}


async def _made(redis: Any, chronic: str) -> dict[str, str]:
    """A digest of each thing insight made (every tree must make the same: the work measured is the same)."""
    from services.insight import problem_store, state
    from shared import streams

    out = {}
    for key in (problem_store.PROBLEMS, problem_store.PENDING, state.EPISODES):
        out[key] = sorted((await redis.hgetall(key)).items())
    for key in (state.EMERGING, chronic):
        out[key] = await redis.get(key)
    for stream in (streams.HOTSPOTS, streams.PROBLEMS_DETECTED):
        out[stream] = [fields for _, fields in await redis.xrange(stream)]
    return {k: hashlib.sha1(repr(v).encode()).hexdigest()[:12] for k, v in out.items()}


def _table(name: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{name}: CPU ms (this process + Redis)")
    print(f"{'seen':>8s} {'batch/ticket':>16s} {'pass':>16s} {'hourly':>18s} {'/ticket':>9s}")
    for r in rows:
        print(
            f"{int(r['seen']):>8d} {r['batch']:>8.3f} + {r['batch_redis']:5.3f} "
            f"{r['pass']:>8.1f} + {r['pass_redis']:5.1f} {r['hourly']:>9.1f} + {r['hourly_redis']:6.1f} "
            f"{r['per_ticket']:>9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--refresh-every", type=int, default=10_000)
    parser.add_argument("--baseline", type=Path, action="append", default=[], metavar="DIR")
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.slice % args.refresh_every or args.refresh_every % BATCH:
        parser.error("--slice must be a multiple of --refresh-every, and that of 100")
    if args.one_pass:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(asyncio.run(one_pass(args.tickets, args.slice, args.refresh_every))))
        return
    trees = [HERE.parent.parent, *(p.resolve() for p in args.baseline)]
    env = dict(os.environ)
    found = [p / "shared" / "datasets" for p in HERE.parents if (p / "shared" / "datasets").is_dir()]
    if found and "HOTLINE_DATASETS" not in env:
        env["HOTLINE_DATASETS"] = str(found[0])
    copy = Path(tempfile.mkdtemp(prefix="insight-growth-")) / HERE.name
    shutil.copy(HERE, copy)
    names = ", ".join(map(str, trees))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.tickets} tickets; trees: {names}")
    results: dict[Path, dict[str, Any]] = {}
    for tree in trees:
        cmd = [sys.executable, str(copy), "--one-pass", "--tickets", str(args.tickets)]
        cmd += ["--slice", str(args.slice), "--refresh-every", str(args.refresh_every)]
        done = subprocess.run(
            cmd, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, stdout=subprocess.PIPE, text=True, check=True
        )
        results[tree] = json.loads(done.stdout.strip().splitlines()[-1])
        _table(str(tree), results[tree]["slices"])
        if (made := results[tree]["made"]) != results[trees[0]]["made"]:
            print(f"  {tree.name} made {made}, not {results[trees[0]]['made']}")
    if len(trees) > 1:
        print(f"\n/ticket of this tree over each baseline; load average {os.getloadavg()[0]:.1f}")
        print(f"{'seen':>8s}" + "".join(f"{t.name[:20]:>22s}" for t in trees[1:]))
        for i, row in enumerate(results[trees[0]]["slices"]):
            ratios = [row["per_ticket"] / results[t]["slices"][i]["per_ticket"] for t in trees[1:]]
            print(f"{int(row['seen']):>8d}" + "".join(f"{r:>22.2f}" for r in ratios))


if __name__ == "__main__":
    main()
