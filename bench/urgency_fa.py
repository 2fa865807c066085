"""False alarms of the urgency detector where its lexicon is out of sample, and what a second signal may do
about them: cross-validated on training rows only (D and E are dropped as the file is read, unread).

    python -m bench.urgency_fa [--cache FILE.npz] [--before REV] [--show]
    python -m bench.urgency_fa --held-out D|E [--cache FILE.npz]     # once, at the end: figures, no texts

Rows: A, B, C (bench/data/urgency_eval.csv) and T (services/classifier/data/urgency_train.csv). The lexicon
of --before (default b1b32ec, before the false-alarm work) was tuned on A, B, C and t0001-t0505, and the
shipped n-gram model trained on them: rows t0506 onwards are out of sample for both. The working tree's
lexicon was then changed from the false alarms of t0506-t1176, so only t1177-t1236 (written after it,
committed before it was run on them) are out of sample for it.

1. Recall and false alarms per group of rows, both lexicons (+ the shipped n-gram model), and the false alarms
   on the fresh rows by the kind of cue that fired and the kind of report (--show prints them).
2. Lowering a flag automatically, cross-validated (5 folds over all training rows, stratified by label and
   language): when e5 scores it below t, the n-gram model below t, or both; each threshold is the loosest at
   which no flagged emergency of the other four folds is lowered. e5's and the n-gram model's score of a
   row come from models fitted on the other folds (the reviewer's LR, C=100; the shipped n-gram recipe).
3. Marking a flag for an operator (the urgency reviewer's "possible false alarm", services/classifier/
   urgency_doubt.py): the text holds a doubting word (`Detector.doubts`) and e5 scores it below t, t the
   loosest of a grid at which at most 0.5% of the other folds' flagged emergencies are marked; the figures
   if an operator lowered every mark are the worst case for recall.

--held-out D (or E) scores that part of the eval file instead, with the shipped models: the detector before
and now, the urgency reviewer's raise (urgency_e5.json, its threshold, not smell-only texts) and its marks
(`urgency_doubt`: a doubting word and e5 below DOUBT_BELOW). It prints counts only, never a text.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.urgency import EVAL, Row, read_eval
from bench.urgency_speed import urgency_at
from services.classifier import urgency_e5
from services.classifier.cues import cue_text
from services.classifier.urgency import Urgency, detector
from services.classifier.urgency_doubt import DOUBT_BELOW
from services.classifier.urgency_e5 import Split, fold_models, folds, logistic, oof

TRAIN_EXTRA = Path(__file__).resolve().parents[1] / "services" / "classifier" / "data" / "urgency_train.csv"
TRAINING_HALVES = ("A", "B", "C", "T")
GROUPS = {
    "A, B, C, t0001-t0505 (both lexicons tuned on them)": ("", "t0505"),
    "t0506-t1016 (fresh to the lexicon before; the fixes written from them)": ("t0506", "t1016"),
    "t1017-t1176 (written for this work; the fixes written from them)": ("t1017", "t1176"),
    "t1177-t1236 (written after the fixes: fresh to both)": ("t1177", "t9999"),
}
E5_C = 100.0  # the reviewer's model's C
MARK_BUDGET = 0.005  # of the flagged emergencies an operator is asked about
MARK_GRID = (0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Rule = Callable[[str, str | None], Urgency]


def training_rows() -> list[Row]:
    """A, B, C and T; D and E are dropped as they are read, their texts never looked at."""
    return [r for r in read_eval(EVAL) + read_eval(TRAIN_EXTRA) if r.half in TRAINING_HALVES]


def group(r: Row, bounds: tuple[str, str]) -> bool:
    if bounds[0] == "":
        return r.half != "T" or r.id <= bounds[1]
    return r.half == "T" and bounds[0] <= r.id <= bounds[1]


@dataclass
class Flagged:
    flags: Bools
    cues: list[str]


def decide(rule: Rule, rows: list[Row]) -> Flagged:
    out = [rule(r.text, None) for r in rows]
    return Flagged(np.asarray([u.level == "emergency" for u in out]), [u.cue for u in out])


def rates(flags: Bools, y: Bools) -> str:
    return (
        f"{flags[y].mean():.3f} ({flags[y].sum()}/{y.sum()}) | "
        f"{flags[~y].mean():.1%} ({flags[~y].sum()}/{(~y).sum()})"
    )


def lowering(names: tuple[str, ...], x: dict[str, Floats], y: Bools, flagged: Bools, split: Split) -> Bools:
    """Out of fold: which flags a rule "every named score below its threshold" lowers, the thresholds those
    that lower the most false alarms of the other folds with none of their flagged emergencies."""
    low = np.zeros(len(y), dtype=bool)
    for fit, test in split:
        pos, neg = (flagged[fit] & y[fit]), (flagged[fit] & ~y[fit])
        grids = [np.unique(np.quantile(x[n][fit][flagged[fit]], np.linspace(0, 1, 41))) for n in names]
        best, chosen = 0, tuple(0.0 for _ in names)
        for point in np.array(np.meshgrid(*grids)).T.reshape(-1, len(names)):
            under = np.all([x[n][fit] < t for n, t in zip(names, point, strict=True)], axis=0)
            if not (under & pos).any() and (gain := int((under & neg).sum())) > best:
                best, chosen = gain, tuple(float(t) for t in point)
        under = np.all([x[n][test] < t for n, t in zip(names, chosen, strict=True)], axis=0)
        low[test] = flagged[test] & under
    return low


def mark_threshold(e5: Floats, y: Bools, candidates: Bools) -> float:
    """The loosest threshold of the grid at which at most MARK_BUDGET of the flagged emergencies (`y`) are
    marked."""
    pos = candidates & y
    allowed = [t for t in MARK_GRID if (pos & (e5 < t)).sum() <= MARK_BUDGET * max(1, int(y.sum()))]
    return max(allowed, default=0.0)


def marking(
    e5: Floats, y: Bools, candidates: Bools, flagged: Bools, split: Split
) -> tuple[Bools, list[float]]:
    """Out of fold: the flags marked, and the threshold chosen on each fold's other folds (`y` there counts
    only the flagged emergencies)."""
    marked = np.zeros(len(y), dtype=bool)
    chosen = []
    for fit, test in split:
        t = mark_threshold(e5[fit], y[fit] & flagged[fit], candidates[fit])
        chosen.append(t)
        marked[test] = candidates[test] & (e5[test] < t)
    return marked, chosen


def held_out(half: str, before: str, cache: Path) -> int:
    """The shipped detector, reviewer and marks on a held-out part: counts only."""
    rows = [r for r in read_eval(EVAL) if r.half == half]
    y = np.asarray([r.emergency for r in rows])
    lang = np.asarray([r.lang for r in rows])
    model = urgency_e5.E5Urgency.load()
    e5 = model.probability(urgency_e5.embed([r.text for r in rows], cache))
    d = detector()
    with tempfile.TemporaryDirectory() as into:
        old = decide(urgency_at(before, Path(into)), rows).flags
    now = decide(d, rows)
    smell = np.asarray([d.smell_only(r.text) for r in rows])
    raised = now.flags | (~smell & (e5 >= model.threshold))
    marked = now.flags & (e5 < DOUBT_BELOW) & np.asarray([bool(d.doubts(r.text)) for r in rows])
    print(f"{half} ({len(rows)} rows): recall | false alarms, all / zh / en\n")
    print("| detector | all | zh | en |\n|---|---|---|---|")
    for name, flags in (
        (f"lexicon + n-gram, before ({before})", old),
        ("lexicon + n-gram, working tree", now.flags),
        ("working tree + the reviewer's raise", raised),
        ("... if an operator lowered every mark (worst case for recall)", raised & ~marked),
    ):
        cells = [rates(flags[pick], y[pick]) for pick in (lang == lang, lang == "zh", lang == "en")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        f"\nmarked a possible false alarm (e5 < {DOUBT_BELOW:g} and a doubting word): "
        f"{(marked & ~y).sum()} of the {(now.flags & ~y).sum()} false alarms, "
        f"{(marked & y).sum()} of the {(now.flags & y).sum()} emergencies flagged"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hotline-urgency-e5.npz"))
    parser.add_argument("--before", default="b1b32ec", help="the commit of the lexicon before this work")
    parser.add_argument("--show", action="store_true", help="print the false alarms of the fresh rows")
    parser.add_argument("--held-out", choices=("D", "E"), help="score this held-out part (once, at the end)")
    args = parser.parse_args()
    if args.held_out:
        return held_out(args.held_out, args.before, args.cache)
    rows = training_rows()
    y = np.asarray([r.emergency for r in rows])
    split = folds(y, [r.lang for r in rows])
    fresh = ~np.asarray([group(r, GROUPS[next(iter(GROUPS))]) for r in rows])
    print(f"{len(rows)} training rows (A, B, C, T), {int(fresh.sum())} of them t0506 onwards")
    vectors = urgency_e5.embed([r.text for r in rows], args.cache).astype(np.float64)
    e5 = oof(logistic(E5_C), vectors, y, split)
    ngram = np.zeros(len(rows))
    for (_, test), model in zip(split, fold_models([r.text for r in rows], y, split), strict=True):
        ngram[test] = [model.score(cue_text(rows[i].text)) for i in test]
    doubts = np.asarray([bool(detector().doubts(r.text)) for r in rows])
    with tempfile.TemporaryDirectory() as into:
        decided = {
            f"before ({args.before})": decide(urgency_at(args.before, Path(into)), rows),
            "working tree": decide(detector(), rows),
        }

    print("\n| rows | lexicon + shipped n-gram model | recall | false alarms |\n|---|---|---|---|")
    for name, bounds in GROUPS.items():
        chosen = np.asarray([group(r, bounds) for r in rows])
        for label, got in decided.items():
            print(f"| {name} | {label} | " + rates(got.flags[chosen], y[chosen]) + " |")

    for label, got in decided.items():
        false = [
            (r, c)
            for r, f, c, n in zip(rows, got.flags, got.cues, fresh, strict=True)
            if f and n and not r.emergency
        ]
        by_cue = dict(Counter(c.split(":")[0] for _, c in false))
        print(f"\n{label}: false alarms on t0506 onwards by cue {by_cue}")
        print(f"  by kind {dict(Counter(r.kind for r, _ in false).most_common())}")
        if args.show:
            for r, cue in false:
                i = rows.index(r)
                print(f"    {r.id} {r.kind:11} {cue:30} e5 {e5[i]:.2f} doubt {doubts[i]!s:5} | {r.text}")

    for label, got in decided.items():
        flagged = got.flags
        print(
            f"\n## {label}: lowering or marking its flags, out of fold\n\n"
            "| rule | all rows: recall | FA | t0506 onwards: recall | FA | lowered: FA / emergencies |\n"
            "|---|---|---|---|---|---|"
        )
        print(f"| none | {rates(flagged, y)} | {rates(flagged[fresh], y[fresh])} | - |")
        x = {"e5": e5, "ngram": ngram}
        for name, names in (
            ("e5 < t", ("e5",)),
            ("n-gram < t", ("ngram",)),
            ("e5 < t and n-gram < t'", ("e5", "ngram")),
        ):
            low = lowering(names, x, y, flagged, split)
            left = flagged & ~low
            print(
                f"| lower: {name} | {rates(left, y)} | {rates(left[fresh], y[fresh])} | "
                f"{(low & ~y).sum()} / {(low & y).sum()} |"
            )
        for scope, candidates in (("doubt word and e5 < t", flagged & doubts), ("e5 < t", flagged)):
            marked, ts = marking(e5, y, candidates, flagged, split)
            left = flagged & ~marked
            print(
                f"| mark for an operator: {scope} (t per fold {', '.join(f'{t:g}' for t in ts)}; all rows "
                f"{mark_threshold(e5, y & flagged, candidates):g}) | {rates(left, y)} | "
                f"{rates(left[fresh], y[fresh])} | marked {(marked & ~y).sum()} / {(marked & y).sum()} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
