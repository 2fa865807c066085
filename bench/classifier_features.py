"""The classifier model's CPU per text (features + scores + calibration), this tree against others.

    .venv/bin/python bench/classifier_features.py --baseline DIR [--model DIR ...] [--texts 2000] [--rounds 5]

`TextClassifier.predict_proba` in batches of 100 (the worker's batch) over the raw Teddy Cup messages
(`text_raw`, read in place from ../shared/datasets or $HOTLINE_DATASETS), cycled to --texts. Each tree
(this one, then each `--baseline DIR`, e.g. `git archive REV | tar -x -C DIR`) runs in its own process
with this interpreter, in turn within each round, so the figures of a round share the machine's state;
the median over rounds is reported, with the ratio to the first baseline. Models: the default starter
model (trained into a temporary directory by this tree) and each `--model DIR`; every tree loads the same
files. Each tree's probabilities are compared with this tree's: the largest difference is printed.
Not part of `make test`.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
BATCH = 100


def _texts(n: int) -> list[str]:
    datasets = Path(os.environ.get("HOTLINE_DATASETS") or HERE.parents[2] / "shared" / "datasets")
    with (datasets / "teddycup2020c" / "classify_train.csv").open(encoding="utf-8", newline="") as f:
        raw = [row["text_raw"] for row in csv.DictReader(f) if row["text_raw"]]
    return [raw[i % len(raw)] for i in range(n)]


def child(tree: Path, model_dir: Path, n: int, out: Path) -> None:
    """In `tree`'s code: µs of CPU per text, and the probabilities saved to `out`."""
    sys.path.insert(0, str(tree))
    from services.classifier.model import TextClassifier

    model = TextClassifier.load(model_dir)
    texts = _texts(n)
    model.predict_proba(texts[:BATCH])  # loads the word dictionary
    started = time.process_time()
    probabilities = [model.predict_proba(texts[i : i + BATCH]) for i in range(0, n, BATCH)]
    cpu = time.process_time() - started
    np.save(out, np.vstack(probabilities))
    print(f"{cpu / n * 1e6:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, action="append", default=[], metavar="DIR", required=True)
    parser.add_argument("--model", type=Path, action="append", default=[], metavar="DIR")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=3, metavar=("TREE", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tree, model_dir, out = args.child
        child(Path(tree), Path(model_dir), args.texts, Path(out))
        return 0

    sys.path.insert(0, str(HERE.parents[1]))
    from services.classifier.starter import ensure_default_model

    trees = [HERE.parents[1], *(p.resolve() for p in args.baseline)]
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="hotline-features-") as tmp:
        models = [ensure_default_model(Path(tmp) / "starter"), *(p.resolve() for p in args.model)]
        for model_dir in models:
            us: dict[Path, list[float]] = {t: [] for t in trees}
            for _ in range(args.rounds):
                for i, tree in enumerate(trees):
                    command = [sys.executable, str(HERE), "--texts", str(args.texts), "--baseline", "-"]
                    done = subprocess.run(
                        [*command, "--child", str(tree), str(model_dir), f"{tmp}/p{i}.npy"],
                        cwd=tree,
                        capture_output=True,
                        text=True,
                    )
                    if done.returncode:
                        print(done.stderr, file=sys.stderr)
                        return 1
                    us[tree].append(float(done.stdout))
            ours = np.load(f"{tmp}/p0.npy")
            base = statistics.median(us[trees[1]])
            print(f"\nmodel {model_dir.name}: {args.texts} texts, batches of {BATCH}, {args.rounds} rounds")
            print("| tree | µs CPU per text (median) | rounds | ratio to baseline | max |Δp| vs this tree |")
            print("|---|---|---|---|---|")
            for i, tree in enumerate(trees):
                diff = float(np.abs(np.load(f"{tmp}/p{i}.npy") - ours).max())
                rounds = " ".join(f"{x:.1f}" for x in us[tree])
                median = statistics.median(us[tree])
                print(f"| {tree} | {median:.1f} | {rounds} | {median / base:.3f} | {diff:.3g} |")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
