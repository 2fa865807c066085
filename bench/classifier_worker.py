"""Classifier worker throughput and memory on real citizen messages, with a baseline from the same run.

    python bench/classifier_worker.py [--teddy-model DIR] [--tickets 3000]

Texts: the raw Teddy Cup 2020 C messages (`text_raw`, median 240 characters) from ../shared/datasets or
$HOTLINE_DATASETS, cycled to --tickets; a third carry coordinates inside the default gazetteer, so place,
signatures and the duplicate index are exercised too.

Models: the default starter model, and a model trained on the Teddy Cup training texts (labels mapped onto the
taxonomy; trained in this run unless --teddy-model names one made by `hotline model train`).

1. In process: `analyse` + `decide` (the worker's handler without Redis) in batches of 100; texts/s of CPU
   time (per core) and of wall time. Baseline: a char 1-3-gram TF-IDF + LinearSVC, sklearn's own pipeline
   (the quality bench's baseline), predicting the same texts in the same batches.
2. Through the real worker: a backlog of tickets in an embedded Redis, then `python -m services.classifier`
   drains it (batches of 100, every effect committed with the XACK); tickets/s over the process's CPU time
   and wall time from its first to its last classified ticket, and its peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import psutil
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.classifier.app import ClassifierSettings
from services.classifier.datafiles import DEFAULT_TAXONOMY, TAXONOMY_FILE, taxonomy_label_map
from services.classifier.handlers import analyse, decide
from services.classifier.model import TextClassifier
from services.classifier.place import default_gazetteer
from services.classifier.starter import ensure_default_model
from shared import streams
from shared.bus import init_streams, redis_client
from shared.codec import DATA_FIELD, pack
from shared.events import Location, TicketReceived
from tools.embedded import EmbeddedRedis, free_port

BATCH = 100
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def datasets_dir() -> Path:
    return Path(
        os.environ.get("HOTLINE_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


def read_teddy() -> tuple[list[str], list[str], list[str]]:
    path = datasets_dir() / "teddycup2020c" / "classify_train.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        [r["text"] for r in rows],
        [r["label"] for r in rows],
        [r["text_raw"] for r in rows if r["text_raw"]],
    )


def events_of(texts: list[str], n: int) -> list[TicketReceived]:
    rng = Random(7)
    out = []
    for i in range(n):
        located = i % 3 == 0
        location = Location(lat=rng.uniform(30.0, 30.3), lon=rng.uniform(120.0, 120.2)) if located else None
        at = T0 + timedelta(seconds=i)
        out.append(
            TicketReceived(
                event_id=f"e{i}",
                ticket_id=f"T{i:07d}",
                occurred_at=at,
                channel="web",
                source_id=f"s{i}",
                text=texts[i % len(texts)],
                received_at=at,
                location=location,
            )
        )
    return out


def batches(items: list[TicketReceived]) -> list[list[TicketReceived]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def in_process(model: TextClassifier, events: list[TicketReceived]) -> tuple[float, float]:
    """(texts/s of CPU time, texts/s of wall time) of the handler without Redis."""
    settings = ClassifierSettings()
    policy, gazetteer = settings.duplicate_policy(), default_gazetteer()
    run = batches(events)
    analyse(run[0][:5], model=model, gazetteer=gazetteer)  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in run:
        analyses = analyse(batch, model=model, gazetteer=gazetteer)
        decide(analyses, candidates={}, policy=policy, review_below=0.5, version=model.version)
    return len(events) / (time.process_time() - cpu), len(events) / (time.perf_counter() - wall)


def baseline(train_texts: list[str], train_labels: list[str], events: list[TicketReceived]) -> float:
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    svm = LinearSVC(C=1.0).fit(vec.fit_transform(train_texts), train_labels)
    cpu = time.process_time()
    for batch in batches(events):
        svm.predict(vec.transform([e.text for e in batch]))
    return len(events) / (time.process_time() - cpu)


async def fill(url: str, events: list[TicketReceived]) -> None:
    redis = redis_client(url)
    try:
        await init_streams(redis)
        for batch in batches(events):
            async with redis.pipeline(transaction=False) as pipe:
                for e in batch:
                    pipe.xadd(streams.RECEIVED, {DATA_FIELD: pack(e)})
                await pipe.execute()
    finally:
        await redis.aclose()


def through_worker(model_dir: Path, events: list[TicketReceived]) -> dict[str, float]:
    """Drain a backlog with the real worker process; its CPU and wall rates and its peak RSS."""
    import redis as sync_redis

    with EmbeddedRedis(appendfsync="no") as server:
        asyncio.run(fill(server.url, events))
        client = sync_redis.Redis.from_url(server.url)
        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "HOTLINE_MODEL_DIR": str(model_dir),
            "HOTLINE_PORT": str(free_port()),
            "HOTLINE_BATCH_SIZE": str(BATCH),
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
        worker = subprocess.Popen([sys.executable, "-m", "services.classifier"], env=env)
        proc = psutil.Process(worker.pid)
        try:
            first = None
            peak = 0
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done = int(client.xlen(streams.CLASSIFIED))
                peak = max(peak, proc.memory_info().rss)
                if first is None and done > 0:
                    first = (done, time.perf_counter(), sum(proc.cpu_times()[:2]))
                if done >= len(events):
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {worker.returncode}")
                time.sleep(0.05)
            else:
                raise TimeoutError("the worker did not drain the backlog in 600 s")
            end = (done, time.perf_counter(), sum(proc.cpu_times()[:2]))
            hwm = _vm_hwm(worker.pid) or peak
        finally:
            worker.terminate()
            worker.wait(30)
            client.close()
    assert first is not None
    n = end[0] - first[0]
    return {"cpu_rate": n / (end[2] - first[2]), "wall_rate": n / (end[1] - first[1]), "rss_mb": hwm / 2**20}


def _vm_hwm(pid: int) -> int | None:
    """The kernel's peak resident set size of a process (Linux), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teddy-model", type=Path, help="a model directory trained on the Teddy Cup data")
    parser.add_argument("--tickets", type=int, default=3000)
    args = parser.parse_args()
    if not (datasets_dir() / "teddycup2020c" / "classify_train.csv").exists():
        print(f"datasets not found under {datasets_dir()} (set HOTLINE_DATASETS)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    train_texts, train_labels, raw = read_teddy()
    events = events_of(raw, args.tickets)
    print(
        f"{len(events)} tickets from {len(raw)} raw Teddy Cup messages "
        f"(median {statistics.median(len(t) for t in raw):.0f} characters)\n"
    )

    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        models = {"starter (default model)": ensure_default_model(Path(tmp) / "starter")}
        if args.teddy_model:
            models["Teddy Cup (trained on 8,194 messages)"] = args.teddy_model
        else:
            mapping = taxonomy_label_map(DEFAULT_TAXONOMY)
            print("training the Teddy Cup model (a few minutes)...", flush=True)
            teddy = TextClassifier.train(train_texts, [mapping[lab] for lab in train_labels])
            teddy.save(Path(tmp) / "teddy")
            (Path(tmp) / "teddy" / TAXONOMY_FILE).write_bytes(DEFAULT_TAXONOMY.read_bytes())
            models["Teddy Cup (trained on 8,194 messages)"] = Path(tmp) / "teddy"

        base = baseline(train_texts, train_labels, events)
        print("| model | features | handler texts/s per core (CPU) | wall | ratio to baseline |")
        print("|---|---|---|---|---|")
        print(f"| baseline: sklearn char 1-3 TF-IDF + LinearSVC, predict only | - | {base:,.0f} | - | 1.00 |")
        loaded = {name: TextClassifier.load(d) for name, d in models.items()}
        for name, model in loaded.items():
            cpu, wall = in_process(model, events)
            n_features = model.report.get("n_features", "?")
            print(f"| {name} | {n_features:,} | {cpu:,.0f} | {wall:,.0f} | {cpu / base:.2f} |")
        print(f"\nbench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

        print("\nthrough the worker process (embedded Redis, batches of 100, effects + XACK committed):")
        print("| model | tickets/s per core (worker CPU) | tickets/s wall | worker peak RSS |")
        print("|---|---|---|---|")
        for name, directory in models.items():
            r = through_worker(directory, events)
            print(f"| {name} | {r['cpu_rate']:,.0f} | {r['wall_rate']:,.0f} | {r['rss_mb']:.0f} MB |")
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
