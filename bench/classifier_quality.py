"""Classifier quality and speed on the shared datasets, against a char TF-IDF + LinearSVC baseline.

    python bench/classifier_quality.py            # datasets from ../shared/datasets or $HOTLINE_DATASETS

Split: 80/20, stratified by label, grouped so that identical and near-identical texts (char-trigram cosine
>= 0.8) fall on one side only; seed 42. The model tunes nothing on the test part (its calibration uses
cross-validation inside the training part). Teddy Cup is scored on the segmented `text` of every test row
and on the raw `text_raw` of the test rows that have it (raw text is what production sees).
"""

from __future__ import annotations

import csv
import os
import platform
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.classifier.cv_groups import duplicate_groups
from services.classifier.metrics import expected_calibration_error, summarize
from services.classifier.model import TextClassifier

SEED = 42
MIN_ROWS_PER_LABEL = 50


def datasets_dir() -> Path:
    return Path(
        os.environ.get("HOTLINE_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def split(texts: list[str], labels: list[str]) -> tuple[list[int], list[int]]:
    groups = duplicate_groups(texts)
    fold = StratifiedGroupKFold(5, shuffle=True, random_state=SEED)
    train, test = next(fold.split(texts, labels, groups))
    return train.tolist(), test.tolist()


def score(model: TextClassifier, texts: list[str], labels: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    predictions = model.predict(texts)
    seconds = time.perf_counter() - started
    predicted = [p.category for p in predictions]
    result = summarize(labels, predicted, model.labels)
    correct = [p == t for p, t in zip(predicted, labels, strict=True)]
    result["ece"] = round(expected_calibration_error([p.confidence for p in predictions], correct), 4)
    result["texts_per_s"] = round(len(texts) / seconds)
    return result


def baseline(
    train_x: list[str], train_y: list[str], tests: dict[str, tuple[list[str], list[str]]]
) -> dict[str, float]:
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    svm = LinearSVC(C=1.0).fit(vec.fit_transform(train_x), train_y)
    labels = sorted(set(train_y))
    return {
        name: summarize(y, list(svm.predict(vec.transform(x))), labels)["macro_f1"]
        for name, (x, y) in tests.items()
    }


def throughput(model: TextClassifier, texts: list[str]) -> int:
    model.predict(texts[:10])
    started = time.perf_counter()
    model.predict(texts)
    return round(len(texts) / (time.perf_counter() - started))


def run(
    name: str, texts: list[str], labels: list[str], tests: dict[str, list[int]], raw: list[str] | None
) -> None:
    train, test = split(texts, labels)
    test_set = set(test)
    train_x, train_y = [texts[i] for i in train], [labels[i] for i in train]
    started = time.perf_counter()
    model = TextClassifier.train(train_x, train_y)
    train_s = time.perf_counter() - started
    sizes = f"{len(train)} train / {len(test)} test rows, {len(set(labels))} labels"
    print(f"\n## {name}: {sizes}, train {train_s:.1f} s")
    print(f"cross-validated on train: macro-F1 {model.report['macro_f1']}, ECE {model.report['ece']}")

    sets: dict[str, tuple[list[str], list[str]]] = {}
    for set_name, rows in tests.items():
        rows = [i for i in rows if i in test_set]
        source = raw if (raw is not None and set_name.startswith("raw")) else texts
        sets[set_name] = ([source[i] for i in rows], [labels[i] for i in rows])
    base = baseline(train_x, train_y, sets)
    print("| test set | n | macro-F1 | accuracy | ECE | baseline macro-F1 | ratio | predict texts/s |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for set_name, (x, y) in sets.items():
        r = results[set_name] = score(model, x, y)
        print(
            f"| {set_name} | {r['n']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | {r['ece']:.4f} | "
            f"{base[set_name]:.4f} | {r['macro_f1'] / base[set_name]:.3f} | {r['texts_per_s']} |"
        )
    headline = next(iter(results))
    print(f"\nper class ({headline}):")
    print("| label | precision | recall | F1 | support |")
    print("|---|---|---|---|---|")
    for label, m in results[headline]["per_class"].items():
        print(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    short = [t[:30] for t in sets[headline][0]]
    rate = throughput(model, short)
    print(f"\nthroughput, single process: {rate} texts/s on {len(short)} texts cut to 30 chars")


def main() -> int:
    root = datasets_dir()
    teddy = root / "teddycup2020c" / "classify_train.csv"
    chicago = root / "chicago_cdph_env_complaints_2021" / "complaints.csv"
    if not teddy.exists() or not chicago.exists():
        print(f"datasets not found under {root} (set HOTLINE_DATASETS)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}")

    rows = read_rows(teddy)
    texts, labels, raws = [r["text"] for r in rows], [r["label"] for r in rows], [r["text_raw"] for r in rows]
    with_raw = [i for i, r in enumerate(raws) if r]
    run(
        "Teddy Cup 2020 C (zh)",
        texts,
        labels,
        {
            "raw text_raw (production-like)": with_raw,
            "segmented text, same rows": with_raw,
            "segmented text, all test rows": list(range(len(rows))),
        },
        raws,
    )

    rows = [r for r in read_rows(chicago) if r["text"].strip()]
    counts = Counter(r["label"] for r in rows)
    rows = [r for r in rows if counts[r["label"]] >= MIN_ROWS_PER_LABEL]
    run(
        f"Chicago CDPH complaints 2021 (en, labels with >= {MIN_ROWS_PER_LABEL} rows)",
        [r["text"] for r in rows],
        [r["label"] for r in rows],
        {"text": list(range(len(rows)))},
        None,
    )

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak_mb:.0f} MB, total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
