"""`model train` / `evaluate` / `predict` / `train-urgency` / `train-urgency-e5` / `train-hazard-kind` /
`export-labels`: the classifier's command line, part of the `hotline` CLI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.classifier import hazard_kind, urgency_e5
from services.classifier.datafiles import (
    DEFAULT_TAXONOMY,
    TAXONOMY_FILE,
    DataError,
    read_column,
    read_corrections,
    read_labelled_csv,
    taxonomy_label_map,
)
from services.classifier.labels import read_labels, write_jsonl
from services.classifier.metrics import expected_calibration_error, summarize
from services.classifier.model import TRAIN_STEPS, ModelLoadError, TextClassifier
from services.classifier.starter import default_model_dir, ensure_default_model
from services.classifier.urgency import detector
from services.classifier.urgency_model import DEFAULT_MODEL as DEFAULT_URGENCY_MODEL
from services.classifier.urgency_model import UrgencyModel, UrgencyModelError
from shared.bus import run_with_redis
from shared.settings import CommonSettings

BAD_INPUT = 2
PREDICT_BATCH = 512


def _default_taxonomy() -> Path:
    return Path(os.environ.get("HOTLINE_TAXONOMY_PATH") or DEFAULT_TAXONOMY)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = subparsers.add_parser("model", help="train and evaluate the text classifier")
    commands = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train a model directory from a labelled CSV")
    train.add_argument("--data", type=Path, required=True, help="CSV with one text and one label column")
    train.add_argument("--text-col", required=True)
    train.add_argument("--label-col", required=True)
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument(
        "--corrections", type=Path, help='JSONL of operator labels {"text":..., "category":...}'
    )
    train.add_argument(
        "--taxonomy",
        type=Path,
        default=None,
        help="taxonomy YAML; labels given as codes, names or aliases become category codes "
        "(default: $HOTLINE_TAXONOMY_PATH or shared/data/taxonomy.yaml)",
    )
    train.add_argument(
        "--raw-labels",
        action="store_true",
        help="keep the labels as they are (data that is not in the taxonomy)",
    )
    train.set_defaults(func=train_command)

    evaluate = commands.add_parser("evaluate", help="score a model directory on a labelled CSV")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--text-col", required=True)
    evaluate.add_argument("--label-col", required=True)
    evaluate.add_argument("--json", action="store_true", help="end the output with one JSON line")
    evaluate.set_defaults(func=evaluate_command)

    predict = commands.add_parser(
        "predict", help="category and urgency of every row of a CSV, one JSON line each, then a summary"
    )
    predict.add_argument("--data", type=Path, required=True, help="CSV with a column of texts")
    predict.add_argument("--text-col", required=True)
    predict.add_argument(
        "--model", type=Path, default=None, help="model directory (default: the classifier's default model)"
    )
    predict.add_argument(
        "--json", action="store_true", help="JSON lines (the only format; accepted for scripts that pass it)"
    )
    predict.set_defaults(func=predict_command)

    train_urgency = commands.add_parser(
        "train-urgency", help="train the urgency model (emergency or not) from a labelled CSV"
    )
    _labelled_data_options(train_urgency)
    train_urgency.set_defaults(func=train_urgency_command)

    train_e5 = commands.add_parser(
        "train-urgency-e5",
        help="train the urgency reviewer's e5 model (emergency or not) from labelled CSVs",
    )
    _labelled_data_options(train_e5)
    _cache_option(train_e5)
    train_e5.set_defaults(func=train_urgency_e5_command)

    train_kind = commands.add_parser(
        "train-hazard-kind",
        help="train the urgency reviewer's hazard kind model (gas, fire, medical...) from labelled CSVs",
    )
    _data_options(train_kind)
    train_kind.add_argument(
        "--kind-col", required=True, help="the column of kinds (rows naming no hazard are left out)"
    )
    _cache_option(train_kind)
    train_kind.set_defaults(func=train_hazard_kind_command)

    export = commands.add_parser(
        "export-labels", help="write operators' corrections (the hotline:labels stream) as training JSONL"
    )
    export.add_argument("--out", type=Path, required=True, help="JSONL file for `model train --corrections`")
    export.add_argument(
        "--redis-url", default=None, help="the system's Redis (default: $REDIS_URL or the settings' default)"
    )
    export.set_defaults(func=export_labels_command)


def _labelled_data_options(parser: argparse.ArgumentParser) -> None:
    _data_options(parser)
    parser.add_argument("--label-col", required=True)
    parser.add_argument(
        "--positive", default="emergency", help="the label of emergencies; any other label is not one"
    )


def _cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="an .npz of embeddings to reuse and add to (bench/urgency_e5.py's)",
    )


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, action="append", help="a labelled CSV; repeat for more files"
    )
    parser.add_argument("--text-col", required=True)
    parser.add_argument(
        "--exclude",
        type=_column_value,
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="leave out the rows with this value (a held-out part: --exclude half=D); repeatable",
    )
    parser.add_argument("--out", type=Path, required=True, help="the model file (JSON) to write")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return BAD_INPUT


def train_command(args: argparse.Namespace) -> int:
    try:
        texts, labels = read_labelled_csv(args.data, args.text_col, args.label_col)
        if args.corrections is not None:
            extra_texts, extra_labels = read_corrections(args.corrections)
            texts, labels = texts + extra_texts, labels + extra_labels
        taxonomy: Path | None = None
        if not args.raw_labels:
            taxonomy = args.taxonomy or _default_taxonomy()
            mapping = taxonomy_label_map(taxonomy)
            unknown = sorted(set(labels) - set(mapping))
            if unknown:
                raise DataError(
                    f"labels not in {taxonomy}: {', '.join(unknown[:10])}"
                    f"{' ...' if len(unknown) > 10 else ''} (add them as aliases, or pass --raw-labels)"
                )
            labels = [mapping[lab] for lab in labels]
    except DataError as exc:
        return _fail(str(exc))

    err = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task(f"training on {len(texts)} texts", total=TRAIN_STEPS)

        def step(message: str) -> None:
            bar.update(task, description=message, advance=1)

        try:
            model = TextClassifier.train(texts, labels, progress=step)
        except ValueError as exc:
            return _fail(str(exc))
        bar.update(task, description="saving", completed=TRAIN_STEPS)
        try:
            model.save(args.out)
            if taxonomy is not None:
                shutil.copyfile(taxonomy, args.out / TAXONOMY_FILE)
        except OSError as exc:
            return _fail(f"{args.out}: cannot write the model: {exc.strerror or exc}")

    report = model.report
    err.print(f"model {model.version} → {args.out}")
    err.print(
        f"cross-validated macro-F1 {report['macro_f1']:.4f}, accuracy {report['accuracy']:.4f}, "
        f"ECE {report['ece']:.4f} ({report['duration_s']} s)"
    )
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    try:
        model = TextClassifier.load(args.model)
        texts, labels = read_labelled_csv(args.data, args.text_col, args.label_col)
        taxonomy = args.model / TAXONOMY_FILE
        if taxonomy.exists():
            mapping = taxonomy_label_map(taxonomy)
            labels = [mapping.get(lab, lab) for lab in labels]
    except (ModelLoadError, DataError) as exc:
        return _fail(str(exc))

    started = time.perf_counter()
    predictions = [
        p for i in range(0, len(texts), PREDICT_BATCH) for p in model.predict(texts[i : i + PREDICT_BATCH])
    ]
    seconds = time.perf_counter() - started
    predicted = [p.category for p in predictions]
    result = summarize(labels, predicted, sorted(set(model.labels) | set(labels)))
    result["ece"] = round(
        expected_calibration_error(
            [p.confidence for p in predictions], [p == t for p, t in zip(predicted, labels, strict=True)]
        ),
        4,
    )
    result["model_version"] = model.version
    result["texts_per_s"] = round(len(texts) / seconds, 1) if seconds > 0 else None

    out = Console(soft_wrap=True)
    table = Table(title=f"model {model.version} on {args.data} ({result['n']} texts)")
    for name in ("category", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "category" else "right")
    for label, m in result["per_class"].items():
        table.add_row(
            label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"])
        )
    out.print(table)
    out.print(
        f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  ECE {result['ece']:.4f}"
    )
    if args.json:
        sys.stdout.flush()
        print(json.dumps(result, ensure_ascii=False))
    return 0


def _default_model_dir() -> Path:
    taxonomy = _default_taxonomy()
    return ensure_default_model(default_model_dir(taxonomy), taxonomy)


def predict_command(args: argparse.Namespace) -> int:
    """One JSON line per row (category, confidence, top3, urgency, urgency_cue), then `{"summary": ...}`."""
    try:
        texts = read_column(args.data, args.text_col)
        model = TextClassifier.load(args.model or _default_model_dir())
        # The worker's urgency model: HOTLINE_URGENCY_MODEL, else the shipped one.
        urgency_of = detector(Path(os.environ.get("HOTLINE_URGENCY_MODEL") or DEFAULT_URGENCY_MODEL))
    except (ModelLoadError, DataError, UrgencyModelError) as exc:
        return _fail(str(exc))
    categories: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for i in range(0, len(texts), PREDICT_BATCH):
        batch = texts[i : i + PREDICT_BATCH]
        for text, p in zip(batch, model.predict(batch), strict=True):
            urgency = urgency_of(text, p.category)
            categories[p.category] += 1
            levels[urgency.level] += 1
            row = {
                "category": p.category,
                "confidence": round(p.confidence, 4),
                "top3": [{"category": c, "confidence": round(s, 4)} for c, s in p.alternatives[:3]],
                "urgency": urgency.level,
                "urgency_cue": urgency.cue,
            }
            print(json.dumps(row, ensure_ascii=False))
    summary = {
        "rows": len(texts),
        "model_version": model.version,
        "categories": dict(categories.most_common()),
        "urgency": dict(levels.most_common()),
    }
    print(json.dumps({"summary": summary}, ensure_ascii=False))
    return 0


def _column_value(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column:
        raise argparse.ArgumentTypeError(f"{text!r} is not COLUMN=VALUE")
    return column, value


def _urgency_rows(args: argparse.Namespace) -> tuple[list[str], list[bool]]:
    """The texts of every --data file but the --exclude rows, and whether each is an emergency."""
    texts: list[str] = []
    labels: list[str] = []
    for path in args.data:
        more_texts, more_labels = read_labelled_csv(path, args.text_col, args.label_col, args.exclude)
        texts += more_texts
        labels += more_labels
    return texts, [label == args.positive for label in labels]


def train_urgency_command(args: argparse.Namespace) -> int:
    try:
        texts, emergency = _urgency_rows(args)
    except DataError as exc:
        return _fail(str(exc))
    try:
        model = UrgencyModel.train(texts, emergency)
    except ValueError as exc:
        return _fail(f"{', '.join(map(str, args.data))}: {exc} (labels {args.positive!r} and others)")
    try:
        model.save(args.out)
    except OSError as exc:
        return _fail(f"{args.out}: cannot write the model: {exc.strerror or exc}")
    print(
        f"urgency model → {args.out}: {sum(emergency)} emergencies, {len(texts) - sum(emergency)} others, "
        f"{len(model.weights)} n-grams, threshold {model.threshold}",
        file=sys.stderr,
    )
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _e5_vectors(texts: list[str], cache: Path | None) -> npt.NDArray[np.float64]:
    _say(f"embedding {len(texts)} texts with e5 (one thread; about 20 ms a text)")
    return urgency_e5.embed(texts, cache).astype("float64")


def _save(model: urgency_e5.E5Urgency | hazard_kind.HazardKind, out: Path) -> int:
    """0, or the exit code of a model that could not be written."""
    try:
        model.save(out)
    except OSError as exc:
        return _fail(f"{out}: cannot write the model: {exc.strerror or exc}")
    return 0


def train_urgency_e5_command(args: argparse.Namespace) -> int:
    try:
        texts, emergency = _urgency_rows(args)
    except DataError as exc:
        return _fail(str(exc))

    try:
        trained = urgency_e5.train(texts, emergency, _e5_vectors(texts, args.cache), log=_say)
    except ValueError as exc:
        return _fail(f"{', '.join(map(str, args.data))}: {exc} (labels {args.positive!r} and others)")
    if failed := _save(trained.model, args.out):
        return failed
    y = [bool(e) for e in emergency]
    flags = trained.cv_flags
    found = sum(f for f, e in zip(flags, y, strict=True) if e) / max(1, sum(y))
    alarms = sum(f for f, e in zip(flags, y, strict=True) if not e) / max(1, len(y) - sum(y))
    _say(
        f"e5 urgency model → {args.out}: {sum(y)} emergencies, {len(y) - sum(y)} others, "
        f"C={trained.model.c:g}, threshold {trained.model.threshold:.3f}; out of fold, the shipped "
        f"detector OR e5 finds {found:.3f} with {alarms:.1%} false alarms"
    )
    return 0


def train_hazard_kind_command(args: argparse.Namespace) -> int:
    texts: list[str] = []
    kinds: list[str] = []
    try:
        for path in args.data:
            more_texts, more_kinds = read_labelled_csv(path, args.text_col, args.kind_col, args.exclude)
            texts += more_texts
            kinds += more_kinds
    except DataError as exc:
        return _fail(str(exc))
    try:
        trained = hazard_kind.train(texts, kinds, _e5_vectors(texts, args.cache), log=_say)
    except ValueError as exc:
        return _fail(f"{', '.join(map(str, args.data))}: {exc}")
    if failed := _save(trained.model, args.out):
        return failed
    model = trained.model
    moved = sum(r.confidence >= model.threshold for r in trained.cv_found)
    _say(
        f"hazard kind model → {args.out}: {model.trained_on} rows, {len(model.classes)} kinds, "
        f"C={model.c:g}, threshold {model.threshold:.3f} ({moved} of the rows at or above it out of fold)"
    )
    return 0


def export_labels_command(args: argparse.Namespace) -> int:
    url = args.redis_url or CommonSettings().redis_url

    try:
        labels = run_with_redis(url, read_labels)
    except RedisError as exc:
        return _fail(f"cannot read the labels from Redis: {exc}")
    try:
        write_jsonl(labels, args.out)
    except OSError as exc:
        return _fail(f"{args.out}: cannot write: {exc}")
    print(f"{len(labels)} corrections → {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.classifier.cli")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
