"""The whole loop's speed, side by side with its limit, in one run.

1. Transport: the same ~1 KB encoded TicketReceived pushed through 4 hops (streams 0 -> 4), once by a raw
   redis-py chain (4 processes: XREADGROUP COUNT 100 BLOCK, then one pipeline of XADDs + XACK) and once by
   our worker runtime (4 processes, each a `shared.worker.Worker` whose handler only forwards the event).
   Rounds are interleaved; the ratio worker/raw of the medians is the figure to compare.
2. Pipeline: every service as its own process (`tools.runner.Stack`) on one Redis; a separate load process
   posts signed telephony webhooks (pre-built, raw HTTP/1.1) at saturation (closed loop) and then at fixed
   offered rates (open loop, latency from each request's due time). Per phase: HTTP latency, webhook ->
   dispatched latency per stage from the ticket store (`received_at`, `classified_at`, `dispatched_at`),
   full-loop throughput, and each process's CPU and peak RSS.
3. The recorder (PostgreSQL, the system of record) in the loop or not: the saturation phase runs on a
   stack without the recorder and on one with it, in the same run; with it, the recorder's lag (tickets
   changed and not yet written) is sampled during the phase and the time to catch up after it is printed.
4. A load that lasts (a phase of 30 s or more, e.g. `--saturation-seconds 0 --rates 1000 --seconds 90`)
   also prints how far behind the loop and the record are every few seconds: flat when they keep up with
   the offered rate, growing when they do not.

    .venv/bin/python bench/pipeline.py [--rates 50,200,500] [--seconds 10] [--saturation-seconds 15]
        [--transport-messages 20000] [--transport-rounds 3] [--only transport|pipeline] [--py-spy DIR]
        [--recorder both|on|off] [--breakdown]

Texts are real citizen messages (Teddy Cup 2020 C, `$HOTLINE_DATASETS` or ../shared/datasets) when present,
else the demo's sample calls. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis as sync_redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.intake.settings import DEV_SECRET  # noqa: E402
from shared import streams  # noqa: E402
from shared.codec import DATA_FIELD, pack  # noqa: E402
from shared.events import TicketReceived, utcnow  # noqa: E402
from tools import loadgen  # noqa: E402
from tools.demo import make_calls  # noqa: E402
from tools.embedded import EmbeddedRedis, free_port  # noqa: E402
from tools.runner import SERVICES, Stack  # noqa: E402

HOPS = 4
GROUP = "hop"


def percentiles(values: list[float]) -> str:
    s = sorted(values)
    return f"{loadgen.percentile(s, 0.5):7.1f} {loadgen.percentile(s, 0.99):7.1f} {s[-1] if s else 0:7.1f}"


# -- resources: CPU and peak RSS of each process -------------------------------------------------------


def cpu_seconds(pid: int | None) -> float:
    """CPU used so far by a process and its children (PostgreSQL: the server and its backends)."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    # Backends that have exited (the recorder's pool closed) count in the server's children_* times.
    own = root.cpu_times()
    total = own.children_user + own.children_system
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return float(total)


class Sampler:
    """Samples RSS of named processes every 0.2 s; CPU is read from cpu_times at start and stop. A process
    named in `trees` counts with its children (PostgreSQL: the server and its backends)."""

    def __init__(self, pids: dict[str, int], trees: frozenset[str] = frozenset()) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.trees = trees
        self.peak = dict.fromkeys(self.procs, 0)
        self.cpu0: dict[str, float] = {}
        self.last: dict[str, float] = {}  # a process that exits keeps its last sampled CPU time
        self.cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self, name: str, p: psutil.Process) -> float:
        if name in self.trees:
            return cpu_seconds(p.pid)
        t = p.cpu_times()
        return float(t.user + t.system)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, p in self.procs.items():
                try:
                    self.peak[name] = max(self.peak[name], p.memory_info().rss)
                    self.last[name] = self._cpu(name, p)
                except psutil.Error:
                    pass

    def __enter__(self) -> Sampler:
        self.cpu0 = {n: self._cpu(n, p) for n, p in self.procs.items()}
        self.last = dict(self.cpu0)
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self._stop.set()
        self._thread.join()
        for name, p in self.procs.items():
            try:
                self.cpu[name] = self._cpu(name, p) - self.cpu0[name]
                self.peak[name] = max(self.peak[name], p.memory_info().rss)
            except psutil.Error:
                self.cpu[name] = self.last[name] - self.cpu0[name]

    def table(self, items: int, unit: str) -> str:
        lines = [f"  {'process':12s} {'CPU % core':>10s} {'CPU ms/' + unit:>14s} {'peak RSS MB':>12s}"]
        for name in self.procs:
            cpu = self.cpu[name]
            lines.append(
                f"  {name:12s} {100 * cpu / self.wall:10.0f} {1000 * cpu / max(1, items):14.3f}"
                f" {self.peak[name] / 2**20:12.0f}"
            )
        total = sum(self.cpu.values())
        lines.append(f"  {'total':12s} {100 * total / self.wall:10.0f} {1000 * total / max(1, items):14.3f}")
        return "\n".join(lines)


# -- transport: raw chain vs the worker runtime ---------------------------------------------------------


def stream_name(chain: str, i: int) -> str:
    return f"bench.{chain}.{i}"


async def _raw_hop(url: str, i: int) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    source, target = stream_name("raw", i), stream_name("raw", i + 1)
    await redis.set(f"bench:ready:raw:{i}", 1)
    while True:
        reply = await redis.xreadgroup(GROUP, f"raw-{i}", {source: ">"}, count=100, block=100)
        for _, entries in reply or []:
            async with redis.pipeline(transaction=False) as pipe:
                for _, fields in entries:
                    pipe.xadd(target, fields, maxlen=1_000_000, approximate=True)
                pipe.xack(source, GROUP, *(entry_id for entry_id, _ in entries))
                await pipe.execute()


def serve_worker_hop(url: str, i: int, port: int) -> None:
    from shared.bus import make_broker, redis_client
    from shared.effects import Effects, Publish
    from shared.service import serve
    from shared.settings import CommonSettings
    from shared.worker import Consumer, Worker

    settings = CommonSettings(redis_url=url, port=port, consumer_name=f"worker-{i}", log_level="WARNING")
    target = stream_name("worker", i + 1)

    async def forward(events: list[TicketReceived]) -> list[Effects]:
        return [Effects(publish=[Publish(target, e)]) for e in events]

    worker = Worker(
        service=f"hop{i}",
        settings=settings,
        redis=redis_client(url),
        consumers=[Consumer(stream_name("worker", i), GROUP, TicketReceived, forward)],
    )
    serve(worker.asgi(make_broker(settings)), settings)


def sample_event() -> TicketReceived:
    text = load_texts(1)[0]
    now = utcnow()
    return TicketReceived(
        event_id=str(uuid.uuid4()),
        ticket_id="T" + uuid.uuid4().hex[:15].upper(),
        occurred_at=now,
        channel="telephony",
        source_id="bench-1",
        text=text,
        language="zh",
        received_at=now,
        ivr_choice="2",
    )


def run_chain(client: sync_redis.Redis, chain: str, fields: dict[bytes, bytes], n: int) -> float:
    """Push n entries into hop 0 and time until the last hop has written all n; returns msg/s."""
    last = stream_name(chain, HOPS)
    started = time.perf_counter()
    for lo in range(0, n, 1000):
        with client.pipeline(transaction=False) as pipe:
            for _ in range(lo, min(n, lo + 1000)):
                pipe.xadd(stream_name(chain, 0), fields)
            pipe.execute()
    deadline = started + 300
    while client.xlen(last) < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{chain} chain moved {client.xlen(last)} of {n} in 300 s")
        time.sleep(0.01)
    rate = n / (time.perf_counter() - started)
    for i in range(HOPS + 1):
        client.xtrim(stream_name(chain, i), maxlen=0, approximate=False)
    return rate


def transport(url: str, n: int, rounds: int, py_spy: Path | None) -> dict[str, float]:
    client = sync_redis.Redis.from_url(url)
    fields = {DATA_FIELD: pack(sample_event())}
    for chain in ("raw", "worker"):
        for i in range(HOPS):
            client.delete(stream_name(chain, i))
            client.xgroup_create(stream_name(chain, i), GROUP, id="0", mkstream=True)
        client.delete(stream_name(chain, HOPS))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    ports = [free_port() for _ in range(HOPS)]
    try:
        for i in range(HOPS):
            processes[f"raw{i}"] = subprocess.Popen(
                [sys.executable, __file__, "--raw-hop", url, str(i)], cwd=ROOT
            )
            processes[f"worker{i}"] = subprocess.Popen(
                [sys.executable, __file__, "--worker-hop", url, str(i), str(ports[i])], cwd=ROOT
            )
        wait_until(lambda: all(client.exists(f"bench:ready:raw:{i}") for i in range(HOPS)), 60, "raw hops")
        wait_until(lambda: all(_ready(p) for p in ports), 60, "worker hops")
        print(f"\n## Transport: {n} messages of {len(fields[DATA_FIELD])} bytes through {HOPS} hops")
        run_chain(client, "raw", fields, min(n, 2000))  # warm-up
        run_chain(client, "worker", fields, min(n, 2000))
        results: dict[str, list[float]] = {"raw": [], "worker": []}
        cpu: dict[str, list[float]] = {"raw": [], "worker": []}
        for r in range(rounds):
            for chain in ("raw", "worker") if r % 2 == 0 else ("worker", "raw"):
                pids = {f"{chain}{i}": processes[f"{chain}{i}"].pid for i in range(HOPS)}
                spies = _py_spy(py_spy / f"transport-{r}", pids, n / 2000) if py_spy else []
                with Sampler(pids) as sampler:
                    rate = run_chain(client, chain, fields, n)
                for spy in spies:
                    spy.wait(60)
                results[chain].append(rate)
                cpu[chain].append(sum(sampler.cpu.values()) / n / HOPS * 1e6)
                print(
                    f"round {r + 1} {chain:6s} {rate:8.0f} msg/s  hop CPU {cpu[chain][-1]:6.1f} µs/msg/hop",
                    flush=True,
                )
        med = {k: statistics.median(v) for k, v in results.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        print(f"\n  {'chain':10s} {'msg/s':>8s} {'µs CPU/msg/hop':>15s}")
        for k in ("raw", "worker"):
            print(f"  {k:10s} {med[k]:8.0f} {med_cpu[k]:15.1f}")
        print(f"  worker/raw throughput: {med['worker'] / med['raw']:.2f}")
        print(f"  raw/worker CPU per message: {med_cpu['raw'] / med_cpu['worker']:.2f}")
        return {"raw": med["raw"], "worker": med["worker"]}
    finally:
        for p in processes.values():
            p.send_signal(signal.SIGTERM)
        for p in processes.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for chain in ("raw", "worker"):
            client.delete(*(stream_name(chain, i) for i in range(HOPS + 1)))
            client.delete(*(f"bench:ready:{chain}:{i}" for i in range(HOPS)))


def _ready(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.1)


# -- the pipeline ------------------------------------------------------------------------------------------


def load_texts(limit: int | None = None) -> list[str]:
    """Real citizen messages (title + text) from the team's datasets, else the demo's sample calls."""
    roots = [Path(os.environ["HOTLINE_DATASETS"])] if os.environ.get("HOTLINE_DATASETS") else []
    roots += [parent / "shared" / "datasets" for parent in ROOT.parents]
    for root in roots:
        path = root / "teddycup2020c" / "hotspot_messages.csv"
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                texts = [f"{row['title']}\n{row['text']}"[:2000] for row in csv.DictReader(f)]
            return texts[:limit]
    return [c["transcript"] for c in make_calls(limit or 100)]


def calls(n: int, run: str, texts: list[str], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        call: dict[str, Any] = {
            "call_id": f"bench-{run}-{i:07d}",
            "caller": f"+86138{rng.randrange(10**8):08d}",
            "transcript": texts[i % len(texts)],
            "language": "zh",
            "ivr_choice": str(rng.randint(1, 9)),
        }
        if i % 2:
            call["location"] = {"lat": 28.2 + rng.random() / 10, "lon": 112.9 + rng.random() / 10}
        out.append(call)
    return out


def _load_process(
    mode: str, port: int, requests: list[bytes], rate: float, connections: int, seconds: float, out: Any
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if mode == "open":
        result = asyncio.run(loadgen.open_loop("127.0.0.1", port, requests, rate, connections))
    else:
        result = asyncio.run(loadgen.closed_loop("127.0.0.1", port, requests, connections, seconds))
    ids = [json.loads(b)["ticket_id"] for b in result.bodies if b.startswith(b'{"ticket_id"')]
    out.put(
        {
            "seconds": result.seconds,
            "latencies": result.latencies,
            "statuses": dict(result.statuses),
            "errors": result.errors,
            "ticket_ids": ids,
        }
    )


def drained(client: sync_redis.Redis, groups: tuple[str, ...]) -> bool:
    """Every one of `groups` has read everything of its streams and acknowledged it."""
    for stream, readers in streams.GROUPS.items():
        if not set(readers) & set(groups):
            continue
        last = client.xinfo_stream(stream)["last-generated-id"]
        for g in client.xinfo_groups(stream):
            if g["name"].decode() in groups and (g["pending"] or g["last-delivered-id"] != last):
                return False
    return True


LOOP_GROUPS = (streams.CLASSIFIER, streams.DISPATCH, streams.EVALUATION, streams.INSIGHT)


def oldest_unread_seconds(client: sync_redis.Redis, groups: tuple[str, ...]) -> float:
    """How long the oldest entry that one of `groups` has not yet read has waited (0 when none waits):
    a lag in seconds, which stays flat when the loop keeps up and grows when it does not."""
    oldest = 0.0
    for stream, readers in streams.GROUPS.items():
        for g in client.xinfo_groups(stream) if set(readers) & set(groups) else ():
            if g["name"].decode() not in groups:
                continue
            first = client.xrange(stream, f"({g['last-delivered-id'].decode()}", "+", count=1)
            if first:
                oldest = max(oldest, time.time() - int(first[0][0].split(b"-")[0]) / 1000)
    return oldest


@dataclass(frozen=True)
class Behind:
    """One look during a phase at how far behind the loop and the record are."""

    at: float  # seconds since the load started
    loop_seconds: float  # the oldest entry a loop group has not read
    unrecorded: int | None = None  # tickets changed and not yet written (with the recorder)
    unrecorded_seconds: float | None = None  # the oldest of those changes
    words_pending: float | None = None  # tickets not yet in the console's word index


@dataclass
class RecorderLag:
    """The recorder during a phase: tickets changed and not yet written (the most seen), and how long
    after the load stopped until everything was written."""

    max_unrecorded: int = 0
    max_oldest_seconds: float = 0.0
    caught_up_after: float | None = None
    ticket_rows: float = 0.0  # ticket states the recorder wrote to PostgreSQL during the phase
    # The word index, filled after the record (migration 0007): seconds after the load stopped until
    # nothing was pending, and PostgreSQL's CPU from the record's catch-up to then (outside the phase's).
    words_caught_up_after: float | None = None
    words_cpu_seconds: float = 0.0


def batch_counts(stack: Stack) -> dict[tuple[str, str], tuple[float, float]]:
    """Each worker's batches so far and the entries in them, by (service, stream), from its /metrics."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for name in stack.processes:
        with urllib.request.urlopen(f"{stack.url_of(name)}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        for line in text.splitlines():
            for suffix, at in (("_count", 0), ("_sum", 1)):
                if line.startswith(f"hotline_batch_size_entries{suffix}{{"):
                    inside = line[line.index("{") + 1 : line.index("}")]
                    labels = dict(x.split("=", 1) for x in inside.split(","))
                    key = (labels["service"].strip('"'), labels["stream"].strip('"'))
                    got = list(out.get(key, (0.0, 0.0)))
                    got[at] = float(line.rsplit(" ", 1)[1])
                    out[key] = (got[0], got[1])
    return out


def recorder_metric(url: str, sample: str) -> float:
    """One sample of the recorder's /metrics, named with its labels as exposed."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    line = f"{sample} "
    return sum(float(x[len(line) :]) for x in text.splitlines() if x.startswith(line))


def recorder_rows(url: str, table: str) -> float:
    """The recorder's count of rows written to `table`."""
    return recorder_metric(url, f'hotline_recorder_rows_total{{table="{table}"}}')


def wait_for_words(url: str, lag: RecorderLag, stopped: float, pg_pid: int | None, deadline: float) -> None:
    """Until the recorder's word index has nothing pending (its gauge, refreshed at each pass)."""
    cpu = cpu_seconds(pg_pid)
    time.sleep(1.5)  # a pass after the record caught up: the gauge may still show the burst's count
    while recorder_metric(url, "hotline_search_index_pending_tickets") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    lag.words_caught_up_after = time.monotonic() - stopped
    lag.words_cpu_seconds = cpu_seconds(pg_pid) - cpu


@dataclass
class Phase:
    name: str
    offered: str
    http: dict[str, Any]
    sampler: Sampler
    tickets: list[dict[str, float]] = field(default_factory=list)
    not_dispatched: Counter[str] = field(default_factory=Counter)
    recorder: RecorderLag | None = None
    # With `--breakdown`: Redis's INFO commandstats over the phase, command -> (calls, usec), and each
    # worker's batches and their entries, (service, stream) -> (batches, entries)
    commands: dict[str, tuple[int, int]] | None = None
    batches: dict[tuple[str, str], tuple[float, float]] | None = None
    # Looks at the lags every few seconds of a load that lasts: bounded or growing
    timeline: list[Behind] = field(default_factory=list)


def stage_latencies(
    client: sync_redis.Redis, ticket_ids: list[str]
) -> tuple[list[dict[str, float]], Counter[str]]:
    """Stage times of the dispatched tickets, and how many of the others ended in each status (a
    ticket that repeats an open one is linked to it, `duplicate`, instead of being dispatched)."""
    from shared.store import keys

    rows = []
    for lo in range(0, len(ticket_ids), 1000):
        with client.pipeline(transaction=False) as pipe:
            for t in ticket_ids[lo : lo + 1000]:
                pipe.hmget(keys.ticket(t), "received_at", "classified_at", "dispatched_at", "status")
            rows += pipe.execute()
    out = []
    others: Counter[str] = Counter()
    for received, classified, dispatched, status in rows:
        if not (received and classified and dispatched):
            others[status.decode() if status else "missing"] += 1
            continue
        r, c, d = (datetime.fromisoformat(v.decode()).timestamp() for v in (received, classified, dispatched))
        out.append({"received": r, "classified": c, "dispatched": d})
    return out, others


def run_phase(
    stack: Stack,
    client: sync_redis.Redis,
    name: str,
    mode: str,
    requests: list[bytes],
    rate: float,
    connections: int,
    seconds: float,
    pids: dict[str, int],
    drain_timeout: float,
    commands: bool = False,
) -> Phase:
    from shared.store import keys

    recording = "recorder" in stack.processes
    lag = RecorderLag() if recording else None
    queue: Any = multiprocessing.Queue()
    port = stack.port_of("intake")
    proc = multiprocessing.Process(
        target=_load_process, args=(mode, port, requests, rate, connections, seconds, queue)
    )
    proc.start()
    assert proc.pid is not None

    def sample_lag() -> int:
        assert lag is not None
        unrecorded = client.zcard(keys.unrecorded)
        oldest = client.zrange(keys.unrecorded, 0, 0, withscores=True)
        lag.max_unrecorded = max(lag.max_unrecorded, unrecorded)
        if oldest:
            lag.max_oldest_seconds = max(lag.max_oldest_seconds, time.time() - oldest[0][1])
        return int(unrecorded)

    rows_before = recorder_rows(stack.url_of("recorder"), "tickets") if recording else 0.0
    if commands:
        client.config_resetstat()
        batches_before = batch_counts(stack)

    def look(started: float) -> Behind:
        if lag is None:
            return Behind(time.monotonic() - started, oldest_unread_seconds(client, LOOP_GROUPS))
        oldest = client.zrange(keys.unrecorded, 0, 0, withscores=True)
        return Behind(
            time.monotonic() - started,
            oldest_unread_seconds(client, LOOP_GROUPS),
            sample_lag(),
            time.time() - oldest[0][1] if oldest else 0.0,
            recorder_metric(stack.url_of("recorder"), "hotline_search_index_pending_tickets"),
        )

    timeline: list[Behind] = []
    length = seconds or len(requests) / max(rate, 1)
    step = max(5.0, length / 12)
    with Sampler({**pids, "loadgen": proc.pid}, trees=frozenset({"postgres"})) as sampler:
        started = next_look = time.monotonic()
        while proc.is_alive() and queue.empty():
            if lag is not None:
                sample_lag()
            if length >= 30 and time.monotonic() >= next_look:
                timeline.append(look(started))
                next_look += step
            time.sleep(0.2)
        http = queue.get(timeout=len(requests) / max(rate, 1) + seconds + 300)
        stopped = time.monotonic()
        deadline = stopped + drain_timeout
        while not drained(client, LOOP_GROUPS) and time.monotonic() < deadline:
            time.sleep(0.1)
        if lag is not None:
            while (sample_lag() or not drained(client, (streams.RECORDER,))) and time.monotonic() < deadline:
                time.sleep(0.1)
            lag.caught_up_after = time.monotonic() - stopped
            lag.ticket_rows = recorder_rows(stack.url_of("recorder"), "tickets") - rows_before
    stats = client.info("commandstats") if commands else None
    batches = None
    if commands:
        batches = {
            k: (n - batches_before.get(k, (0, 0))[0], e - batches_before.get(k, (0, 0))[1])
            for k, (n, e) in batch_counts(stack).items()
        }
    if lag is not None:
        wait_for_words(stack.url_of("recorder"), lag, stopped, pids.get("postgres"), deadline)
    proc.join()
    phase = Phase(name, f"{rate:.0f}/s" if mode == "open" else f"closed, {connections} conn", http, sampler)
    phase.recorder = lag
    if stats is not None:
        phase.commands = {k.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for k, v in stats.items()}
    phase.batches = batches
    phase.timeline = timeline
    phase.tickets, phase.not_dispatched = stage_latencies(client, http["ticket_ids"])
    return phase


def report(phase: Phase) -> None:
    http, tickets = phase.http, phase.tickets
    answered = len(http["latencies"])
    ok = len(http["ticket_ids"])
    print(f"\n### {phase.name} (offered {phase.offered})")
    print(
        f"  HTTP: {answered} answered in {http['seconds']:.1f} s = {answered / http['seconds']:.0f} req/s;"
        f" statuses {http['statuses']}; connection errors {http['errors']}"
    )
    print(f"  HTTP latency ms (p50 p99 max):            {percentiles([x * 1000 for x in http['latencies']])}")
    if tickets:
        first = min(t["received"] for t in tickets)
        last = max(t["dispatched"] for t in tickets)
        print(
            f"  dispatched {len(tickets)} of {ok} accepted; full loop {len(tickets) / (last - first):.0f}"
            f" tickets/s (first received -> last dispatched, {last - first:.1f} s)"
        )
        if phase.not_dispatched:
            print(f"  not dispatched, by status: {dict(sorted(phase.not_dispatched.items()))}")
        for label, a, b in (
            ("webhook -> dispatched", "received", "dispatched"),
            ("  received -> classified", "received", "classified"),
            ("  classified -> dispatched", "classified", "dispatched"),
        ):
            print(f"  {label:28s} ms (p50 p99 max): {percentiles([(t[b] - t[a]) * 1000 for t in tickets])}")
    if (lag := phase.recorder) is not None:
        print(
            f"  recorder: at most {lag.max_unrecorded} tickets unrecorded, oldest change waited at most"
            f" {lag.max_oldest_seconds:.1f} s; all recorded {lag.caught_up_after:.1f} s after the load"
            f" stopped; {lag.ticket_rows / max(1, len(tickets)):.2f} ticket states written per ticket"
        )
        if lag.words_caught_up_after is not None:
            print(
                f"  word index: nothing pending {lag.words_caught_up_after:.1f} s after the load stopped;"
                f" PostgreSQL meanwhile {lag.words_cpu_seconds:.2f} CPU s"
                f" ({1000 * lag.words_cpu_seconds / max(1, len(tickets)):.3f} ms/ticket, not in the table)"
            )
    if phase.timeline:
        recording = phase.timeline[0].unrecorded is not None
        columns = "; tickets unrecorded; oldest change unrecorded, s; word index pending" if recording else ""
        print(f"  behind, during the load (s since it began: the loop's oldest unread entry, s{columns})")
        for b in phase.timeline:
            line = f"  {b.at:6.0f} s {b.loop_seconds:8.1f}"
            if recording:
                line += f" {b.unrecorded:9d} {b.unrecorded_seconds:8.1f} {b.words_pending:9.0f}"
            print(line)
    print(phase.sampler.table(len(tickets), "ticket"))
    if phase.commands:
        n = max(1, len(tickets))
        print("  Redis commands by server time (commands run by scripts are also inside eval's time):")
        print("  command              calls/ticket  µs/ticket")
        for name, (calls, usec) in sorted(phase.commands.items(), key=lambda kv: -kv[1][1])[:15]:
            print(f"  {name:20s} {calls / n:12.2f} {usec / n:10.1f}")
    if phase.batches:
        n = max(1, len(tickets))
        print("  batches                              per ticket   mean entries")
        for (service, stream), (count, entries) in sorted(phase.batches.items()):
            if count:
                print(f"  {service:12s} {stream:24s} {count / n:10.3f} {entries / count:14.1f}")


def dump(path: Path, phase: Phase) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"http": phase.http, "tickets": phase.tickets}))


def pipeline(url: str, args: argparse.Namespace, redis_pid: int | None) -> None:
    client = sync_redis.Redis.from_url(url)
    texts = load_texts()
    rng = random.Random(1)
    run = uuid.uuid4().hex[:8]
    print(f"\n## Pipeline: {len(texts)} distinct texts")
    saturation: dict[bool, Phase] = {}
    for recording in {"off": (False,), "on": (True,), "both": (False, True)}[args.recorder]:
        left_out = {"recorder"} if not recording else set()
        if args.no_urgency_review:
            left_out.add("urgency-review")
        services = tuple(s for s in SERVICES if s not in left_out)
        base = _free_range(len(SERVICES))
        log_dir = Path(tempfile.mkdtemp(prefix="hotline-bench-logs-"))
        env = {
            "HOTLINE_LOG_LEVEL": "WARNING",
            "HOTLINE_RATE_LIMITS": json.dumps({"webhook": 10**9}),
        }
        print(f"\n## {'With' if recording else 'Without'} the recorder; service logs in {log_dir}")
        client.flushdb()  # a new recorder group starts at 0: it must not begin behind the other stack's run
        with Stack(
            redis_url=url,
            database_url=args.database_url,
            base_port=base,
            extra_env=env,
            log_dir=log_dir,
            services=services,
            ready_timeout=300,
        ) as stack:
            pids = {name: p.pid for name, p in stack.processes.items()}
            if redis_pid:
                pids["redis"] = redis_pid
            if stack.embedded_pg is not None and stack.embedded_pg.process is not None:
                pids["postgres"] = stack.embedded_pg.process.pid
            port = stack.port_of("intake")
            made = 0

            def requests(n: int, port: int = port, recording: bool = recording) -> list[bytes]:
                nonlocal made
                batch = calls(n, f"{run}-{recording}-{made}", texts, rng)
                made += n
                return loadgen.signed_telephony_requests("127.0.0.1", port, DEV_SECRET, batch)

            run_phase(stack, client, "warm-up", "open", requests(400), 200, 16, 0, pids, 60)
            # Saturation first: both stacks start it from the same state (the warm-up's tickets only). After
            # the fixed rates, insight's background passes (over the recent tickets) cost the loop some
            # 0.15-0.3 ms a ticket more, which the stack with the recorder alone would pay.
            if args.saturation_seconds:
                n = int(args.saturation_seconds * 5000)
                spies = _py_spy(args.py_spy, pids, args.saturation_seconds) if args.py_spy else []
                phase = run_phase(
                    stack,
                    client,
                    f"saturation, {'with' if recording else 'without'} the recorder",
                    "closed",
                    requests(n),
                    0,
                    args.connections,
                    args.saturation_seconds,
                    pids,
                    300,
                    commands=args.breakdown,
                )
                for spy in spies:
                    spy.wait(60)
                report(phase)
                saturation[recording] = phase
            # The fixed rates once, on the system as it ships (with its recorder, or the only stack run).
            if recording or args.recorder == "off":
                for rate in args.rates:
                    phase = run_phase(
                        stack,
                        client,
                        f"fixed rate {rate:g}/s",
                        "open",
                        requests(int(rate * args.seconds)),
                        rate,
                        args.connections,
                        0,
                        pids,
                        120,
                    )
                    report(phase)
                    if args.dump:
                        dump(args.dump / f"rate-{rate:.0f}.json", phase)
        shutil.rmtree(log_dir, ignore_errors=True)
    if len(saturation) == 2:
        rates = {k: _loop_rate(p) for k, p in saturation.items()}
        print(
            f"\n## Saturation: {rates[True]:.0f} tickets/s with the recorder, {rates[False]:.0f} without"
            f" (ratio {rates[True] / rates[False]:.2f})"
        )


def _loop_rate(phase: Phase) -> float:
    if not phase.tickets:
        return 0.0
    first = min(t["received"] for t in phase.tickets)
    last = max(t["dispatched"] for t in phase.tickets)
    return len(phase.tickets) / (last - first)


def _py_spy(directory: Path, pids: dict[str, int], seconds: float) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    directory.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "200",
                "--format",
                "speedscope",
                "--output",
                str(directory / f"{name}.speedscope.json"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
        if name != "redis"
    ]


def _free_range(n: int) -> int:
    import socket

    for _ in range(50):
        base = random.randrange(20_000, 60_000)
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


@contextmanager
def redis_server(url: str | None, appendfsync: str) -> Iterator[tuple[str, int | None]]:
    if url:
        yield url, None
        return
    with EmbeddedRedis(appendfsync=appendfsync) as server:
        assert server.process is not None
        yield server.url, server.process.pid


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def cores_available(seconds: float = 2.0) -> float:
    """How many cores two busy processes actually get right now (other jobs share the machine)."""
    spinners = [multiprocessing.Process(target=_spin, args=(seconds,)) for _ in range(os.cpu_count() or 2)]
    for p in spinners:
        p.start()
    procs = [psutil.Process(p.pid) for p in spinners if p.pid is not None]
    time.sleep(seconds * 0.95)
    cpu = sum(sum(p.cpu_times()[:2]) for p in procs)
    for p in spinners:
        p.join()
    return cpu / (seconds * 0.95)


def machine() -> str:
    import platform

    load = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {datetime.now():%Y-%m-%d %H:%M}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[50, 200, 500])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each fixed-rate phase")
    parser.add_argument("--saturation-seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--transport-messages", type=int, default=20_000)
    parser.add_argument("--transport-rounds", type=int, default=3)
    parser.add_argument("--only", choices=("transport", "pipeline"))
    parser.add_argument(
        "--redis-url", default=None, help="default: an embedded Redis (AOF everysec); flushed by the run"
    )
    parser.add_argument("--appendfsync", default="everysec", choices=("always", "everysec", "no"))
    parser.add_argument("--dump", type=Path, default=None, metavar="DIR", help="raw timings, as JSON")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR", help="profile under saturation")
    parser.add_argument(
        "--breakdown", action="store_true", help="Redis's commandstats per ticket at saturation"
    )
    parser.add_argument("--recorder", choices=("both", "on", "off"), default="both")
    parser.add_argument(
        "--no-urgency-review",
        action="store_true",
        help="without the urgency reviewer (e5 at nice 10): what its spare-CPU use costs the loop",
    )
    parser.add_argument("--database-url", default=None, help="default: an embedded PostgreSQL per stack")
    parser.add_argument("--raw-hop", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker-hop", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_hop:
        import uvloop

        uvloop.run(_raw_hop(args.raw_hop[0], int(args.raw_hop[1])))
        return
    if args.worker_hop:
        serve_worker_hop(args.worker_hop[0], int(args.worker_hop[1]), int(args.worker_hop[2]))
        return

    print(f"# Pipeline benchmark\n{machine()}")
    print(f"Busy processes get {cores_available():.2f} of {os.cpu_count()} cores right now")
    with redis_server(args.redis_url, args.appendfsync) as (url, redis_pid):
        info = sync_redis.Redis.from_url(url).info("server")
        print(f"Redis {info['redis_version']} at {url}")
        if args.only in (None, "transport"):
            transport(url, args.transport_messages, args.transport_rounds, args.py_spy)
        if args.only in (None, "pipeline"):
            pipeline(url, args, redis_pid)
    print(f"\ndone; {machine()}; busy processes get {cores_available():.2f} cores")


if __name__ == "__main__":
    main()
