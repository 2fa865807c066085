"""Does masking personal data change what the classifier makes of a message?

Real citizen messages (Teddy Cup 2020, `text_raw`) each get a contact sentence with a made-up mobile, ID
number and e-mail appended, as callers say them. The default model and the urgency cues then read the
message three ways: without the sentence (the baseline), with it raw, and with it masked by
`shared.pii.redact`. Printed: how often category and urgency agree with the baseline, for raw and masked
(masking should agree at least as often as the raw numbers do), and redact's speed.

    .venv/bin/python -m bench.pii_masking [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import time
from pathlib import Path

from services.classifier.model import TextClassifier
from services.classifier.starter import default_model_dir, ensure_default_model
from services.classifier.urgency import urgency_of
from shared.pii import redact

csv.field_size_limit(1 << 30)


def messages(limit: int) -> list[str]:
    root = Path(
        os.environ.get("HOTLINE_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    with (root / "teddycup2020c" / "classify_train.csv").open(encoding="utf-8") as f:
        rows = [r["text_raw"] for r in csv.DictReader(f)]
    random.Random(12345).shuffle(rows)
    return rows[:limit]


def contact(rng: random.Random) -> str:
    mobile = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    return f"。我的电话是{mobile}，身份证11010519491231002X，邮箱 citizen{rng.randrange(999)}@example.com"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=2000)
    args = parser.parse_args()
    model = TextClassifier.load(ensure_default_model(default_model_dir()))
    base = messages(args.limit)
    rng = random.Random(7)
    raw = [m + contact(rng) for m in base]
    started = time.perf_counter()
    masked = [redact(m, b"bench-caller-hash-key").text for m in raw]
    per_s = len(raw) / (time.perf_counter() - started)
    readings = {}
    for name, texts in (("baseline", base), ("raw", raw), ("masked", masked)):
        categories = [p.category for p in model.predict(texts)]
        readings[name] = (
            categories,
            [urgency_of(t, c).level for t, c in zip(texts, categories, strict=True)],
        )
    print(
        f"{len(base)} Teddy Cup messages, default model {model.version}, a contact sentence appended to each"
    )
    print("| text | category agrees with baseline | urgency agrees with baseline |")
    print("|---|---|---|")
    for name in ("raw", "masked"):
        cat = sum(a == b for a, b in zip(readings[name][0], readings["baseline"][0], strict=True)) / len(base)
        urg = sum(a == b for a, b in zip(readings[name][1], readings["baseline"][1], strict=True)) / len(base)
        print(f"| {name} numbers | {cat:.4f} | {urg:.4f} |")
    print(f"redact: {per_s:,.0f} messages/s (mean {sum(map(len, raw)) / len(raw):.0f} characters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
