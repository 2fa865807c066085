"""CPU per ticket of each loop service, one service at a time on the same tickets, this tree against others.

    .venv/bin/python bench/loop_cpu.py [--tickets 6000] [--rounds 2] [--baseline DIR ...]

The pipeline bench (bench/pipeline.py) runs every service at once, so on a shared 2-core machine each
one's CPU per ticket moves by ±10-20% with what the others and other jobs leave it. Here each stage runs
alone on one embedded Redis (AOF everysec, as `make run`), on the same signed telephony webhooks (real
Teddy Cup texts, half with coordinates, fixed seed):
- **intake**: the webhooks posted closed loop over 64 connections; its CPU over the posting;
- **classifier, dispatch, evaluation, insight**, in the loop's order: each started while its consumer
  group is moved past its backlog (XGROUP SETID `$`), so its start-up is not counted, then moved back, so
  it reads the backlog in full batches, as at saturation; its CPU from then until its group has read and
  acknowledged everything.
Redis's CPU is counted per stage too. Trees (`--baseline DIR`: e.g. `git archive REV | tar -x -C DIR`)
run in turn within each round, each from its own directory with this script's copy, so the figures of
one round share the machine's state. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
STAGES = ("intake", "classifier", "dispatch", "evaluation", "insight")


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def run_stages(tickets: int) -> dict[str, dict[str, float]]:
    """One pass over the stages in this process's tree (the current directory); CPU ms per ticket."""
    import redis as sync_redis

    from bench.pipeline import _load_process, calls, drained, load_texts
    from services.intake.settings import DEV_SECRET
    from shared import streams
    from tools import loadgen
    from tools.embedded import EmbeddedRedis
    from tools.runner import Stack

    out: dict[str, dict[str, float]] = {}
    env = {"HOTLINE_LOG_LEVEL": "WARNING", "HOTLINE_RATE_LIMITS": json.dumps({"webhook": 10**9})}
    with (
        EmbeddedRedis(appendfsync="everysec") as server,
        Stack(redis_url=server.url, extra_env=env, services=(), ready_timeout=300) as stack,
    ):
        assert server.process is not None
        redis_pid = server.process.pid
        client = sync_redis.Redis.from_url(server.url)
        stack.start_service("intake")
        stack.wait_ready(300)
        requests = loadgen.signed_telephony_requests(
            "127.0.0.1",
            stack.port_of("intake"),
            DEV_SECRET,
            calls(tickets, "loopcpu", load_texts(), random.Random(1)),
        )
        queue: multiprocessing.Queue[dict[str, object]] = multiprocessing.Queue()
        cpu0, redis0 = _cpu(stack.processes["intake"].pid), _cpu(redis_pid)
        load = multiprocessing.Process(
            target=_load_process,
            args=("closed", stack.port_of("intake"), requests, 0, 64, 3600, queue),
        )
        load.start()
        accepted = len(queue.get(timeout=600)["ticket_ids"])  # type: ignore[arg-type]
        load.join()
        out["intake"] = {
            "cpu": (_cpu(stack.processes["intake"].pid) - cpu0) * 1000 / accepted,
            "redis": (_cpu(redis_pid) - redis0) * 1000 / accepted,
        }
        stack.stop_service("intake")
        for service, group in (
            ("classifier", streams.CLASSIFIER),
            ("dispatch", streams.DISPATCH),
            ("evaluation", streams.EVALUATION),
            ("insight", streams.INSIGHT),
        ):
            read = [s for s, groups in streams.GROUPS.items() if group in groups]
            were = {
                s: next(g["last-delivered-id"] for g in client.xinfo_groups(s) if g["name"].decode() == group)
                for s in read
            }
            for s in read:
                client.xgroup_setid(s, group, "$")
            stack.start_service(service)
            stack.wait_ready(300)
            time.sleep(1.0)  # past start-up's own passes
            pid = stack.processes[service].pid
            cpu0, redis0 = _cpu(pid), _cpu(redis_pid)
            for s, last in were.items():
                client.xgroup_setid(s, group, last)
            while not drained(client, (group,)):
                time.sleep(0.05)
            out[service] = {
                "cpu": (_cpu(pid) - cpu0) * 1000 / accepted,
                "redis": (_cpu(redis_pid) - redis0) * 1000 / accepted,
            }
            stack.stop_service(service)
        # What the stages made, which every tree must agree on: the work measured is the same work.
        out["made"] = {
            s: float(client.xlen(s))
            for s in (*streams.GROUPS, *(streams.dlq(s) for s in streams.GROUPS))
            if client.exists(s) and client.xlen(s)
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, action="append", default=[], metavar="DIR")
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_pass:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(run_stages(args.tickets)))
        return
    trees = [HERE.parent.parent, *(p.resolve() for p in args.baseline)]
    # Every tree reads the texts this one finds (a copy elsewhere would fall back to the demo's calls).
    env = dict(os.environ)
    found = [p / "shared" / "datasets" for p in HERE.parents if (p / "shared" / "datasets").is_dir()]
    if found and "HOTLINE_DATASETS" not in env:
        env["HOTLINE_DATASETS"] = str(found[0])
    copy = Path(tempfile.mkdtemp(prefix="loop-cpu-")) / HERE.name
    shutil.copy(HERE, copy)
    results: dict[Path, list[dict[str, dict[str, float]]]] = {t: [] for t in trees}
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.tickets} tickets; trees: {', '.join(map(str, trees))}"
    )
    for r in range(args.rounds):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            done = subprocess.run(
                [sys.executable, str(copy), "--one-pass", "--tickets", str(args.tickets)],
                cwd=tree,
                env={**env, "PYTHONPATH": str(tree)},
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            results[tree].append(figures)
            if figures["made"] != results[trees[0]][0]["made"]:
                print(f"  {tree.name} made {figures['made']}, not {results[trees[0]][0]['made']}")
            print(
                f"round {r + 1} {tree.name:12s} "
                + "  ".join(f"{s} {figures[s]['cpu']:.3f}+{figures[s]['redis']:.3f}" for s in STAGES)
            )
    print(
        f"\nCPU ms per ticket, median of {args.rounds} rounds (service + Redis during its stage);"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'stage':12s}" + "".join(f"{t.name[:18]:>22s}" for t in trees))
    for stage in (*STAGES, "total"):
        row = f"{stage:12s}"
        for tree in trees:
            if stage == "total":
                cpu = statistics.median(sum(f[s]["cpu"] for s in STAGES) for f in results[tree])
                red = statistics.median(sum(f[s]["redis"] for s in STAGES) for f in results[tree])
            else:
                cpu = statistics.median(f[stage]["cpu"] for f in results[tree])
                red = statistics.median(f[stage]["redis"] for f in results[tree])
            row += f"{cpu:>13.3f} + {red:6.3f}"
        print(row)


if __name__ == "__main__":
    main()
