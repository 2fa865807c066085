"""The urgency reviewer's throughput per core: its handler (`review_batch`) with the shipped e5 model, in
batches of the reviewer's size, on real messages, on one thread as the service runs it.

    HOTLINE_DATASETS=/work/shared/datasets python -m bench.urgency_review [--limit 400]

Reads the Teddy Cup 2020 C raw messages and the Chicago CDPH complaints in place (never copied), each as a
`general` ticket received a minute ago, and prints per data set: how many texts e5 was asked about (the
others skipped as smell-only or empty), how many it raised, and texts/s per core: reviewed tickets over the
process's CPU seconds (CPU, not wall time, so other load on the machine does not count): the rates are per
core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the service runs it; read when the engine loads
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.urgency import real_texts
from services.classifier.hazards import load as load_hazards
from services.classifier.review import Embeddings, ReviewSettings, e5_scorer, hazard_recogniser
from services.classifier.urgency import detector
from services.classifier.urgency_review import Filed, Policy, review_batch
from shared.events import Place, TicketClassified, utcnow

REAL_SETS = ("Teddy Cup 2020 C, raw messages", "Chicago CDPH")


def ticket(n: int) -> TicketClassified:
    now = utcnow()
    return TicketClassified(
        event_id=f"c{n}",
        ticket_id=f"T{n}",
        occurred_at=now,
        category="environment",
        confidence=0.8,
        urgency="general",
        place=Place(),
        model_version="bench",
        received_at=now - timedelta(minutes=1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=400, help="messages per data set")
    args = parser.parse_args()
    settings = ReviewSettings()
    started = time.perf_counter()
    embeddings = Embeddings()
    score, threshold = e5_scorer(settings.e5_model, embeddings)
    recognise, hazard_threshold = hazard_recogniser(settings.hazard_model, embeddings)
    print(f"e5 engine and model loaded in {time.perf_counter() - started:.1f} s; threshold {threshold:.3f}")
    smell_only = detector().smell_only
    policy = Policy(threshold=threshold, hazard_threshold=hazard_threshold, hazards=load_hazards())
    with open("/proc/loadavg") as f:
        print(f"load average: {' '.join(f.read().split()[:3])}; batches of {settings.batch_size}, 1 thread\n")
    print("| data set | tickets | asked e5 | raised | mean chars | CPU s | tickets/s | asked/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, texts in real_texts().items():
        if not name.startswith(REAL_SETS):
            continue
        texts = texts[: args.limit]
        asked = raised = 0
        cpu = time.process_time()
        for i in range(0, len(texts), settings.batch_size):
            batch = texts[i : i + settings.batch_size]
            done = review_batch(
                [ticket(i + j) for j in range(len(batch))],
                batch,
                ["general"] * len(batch),
                [Filed("environment", "model")] * len(batch),
                score=score,
                recognise=recognise,
                smell_only=smell_only,
                policy=policy,
                now=utcnow(),
            )
            asked += sum(s is not None for s in done.scores)
            raised += done.outcomes.count("raised")
        seconds = time.process_time() - cpu
        chars = sum(min(len(t), 128) for t in texts) / len(texts)
        print(
            f"| {name} | {len(texts)} | {asked} | {raised} | {chars:.0f} | {seconds:.1f} | "
            f"{len(texts) / seconds:.1f} | {asked / seconds:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
