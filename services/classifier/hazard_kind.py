"""The hazard kind of an emergency (gas, fire, medical...: data/hazards.yaml) from its e5 embedding.

The urgency reviewer raises tickets the classifier filed as something else, so their category is often the
wrong one for an emergency (a stroke filed under utilities, 36% confident). Over the embedding the reviewer
has computed already (urgency_e5.embed), a multinomial logistic regression gives each kind's probability.
A ticket is moved only when its category's departments cannot act on the recognised kind and the model is
confident enough: the confidence is the probability of the kinds that the recognised kind's category acts
on (fire 0.5 and explosion 0.4 are 0.9 for public_safety), not of the one kind.

The file is JSON (no pickle), written by

    hotline model train-hazard-kind --data bench/data/urgency_eval.csv \
        --data services/classifier/data/urgency_train.csv --text-col text --kind-col kind \
        --exclude half=D --exclude half=E --out services/classifier/data/hazard_kind.json

Rows whose kind names no hazard (non-emergencies, `other`) are left out. C and the threshold come from a
5-fold cross-validation over the training rows, stratified by kind (seed 42): C by the out-of-fold share
of rows whose recognised kind's category acts on the true kind; the threshold is the lowest at which at
least PRECISION (99%) of the out-of-fold rows at or above it are recognised so: a move goes to a department
that can act. 99%, not less: the training rows are easier than unseen wording (the held-out D and E,
BENCHMARKS.md), and at 95% the lowest confidence of all passed. Where no threshold exists, training stops
with an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from services.classifier.hazards import Hazards, load
from services.classifier.urgency_e5 import (
    C_GRID,
    DIM,
    E5_CHARS,
    ENCODER,
    FOLDS,
    SEED,
    E5ModelError,
    Floats,
    encoder_version,
    read_model,
)

FORMAT = "hotline-hazard-kind-e5/1"
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "hazard_kind.json"
PRECISION = 0.99


class Recognised(NamedTuple):
    kind: str
    confidence: float  # the probability of the kinds the kind's category acts on


@dataclass(frozen=True)
class HazardKind:
    classes: tuple[str, ...]
    weights: Floats  # classes x DIM
    intercepts: Floats
    threshold: float
    c: float
    trained_on: int
    trained_at: str
    encoder_version: str
    hazards: Hazards

    def probabilities(self, vectors: npt.NDArray[np.floating[Any]]) -> Floats:
        z = np.asarray(vectors, dtype=np.float64) @ self.weights.T + self.intercepts
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)

    def recognise(self, vectors: npt.NDArray[np.floating[Any]]) -> list[Recognised]:
        """The kind of each embedding (rows of `vectors`) and the confidence that its category acts."""
        return recognised(self.probabilities(vectors), self.classes, self.hazards)

    def save(self, path: Path) -> None:
        body = {
            "format": FORMAT,
            "encoder": ENCODER,
            "encoder_version": self.encoder_version,
            "chars": E5_CHARS,
            "c": self.c,
            "threshold": self.threshold,
            "precision": PRECISION,
            "trained_on": self.trained_on,
            "trained_at": self.trained_at,
            "classes": list(self.classes),
            "intercepts": [round(float(b), 6) for b in self.intercepts],
            "weights": [[round(float(w), 6) for w in row] for row in self.weights],
        }
        path.write_text(json.dumps(body, indent=0) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL, hazards: Hazards | None = None) -> HazardKind:
        hazards = hazards or load()
        body = read_model(path, FORMAT, "a hazard kind model")
        try:
            classes = tuple(str(c) for c in body["classes"])
            weights = np.asarray(body["weights"], dtype=np.float64)
            intercepts = np.asarray(body["intercepts"], dtype=np.float64)
            if weights.shape != (len(classes), DIM) or intercepts.shape != (len(classes),):
                raise ValueError(f"weights {weights.shape} for {len(classes)} kinds of {DIM} numbers")
            if int(body["chars"]) != E5_CHARS:
                raise ValueError(f"trained on {body['chars']} characters a text, this code embeds {E5_CHARS}")
            if unknown := [c for c in classes if c not in hazards.kinds]:
                raise ValueError(f"kinds {unknown} are not in the hazard file: retrain")
            return cls(
                classes,
                weights,
                intercepts,
                float(body["threshold"]),
                float(body["c"]),
                int(body["trained_on"]),
                str(body["trained_at"]),
                str(body["encoder_version"]),
                hazards,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise E5ModelError(f"{path}: incomplete hazard kind model: {exc}") from None


def recognised(probabilities: Floats, classes: Sequence[str], hazards: Hazards) -> list[Recognised]:
    # acts[i, j]: the category of kind i acts on kind j
    acts = np.asarray(
        [[hazards.acts(j, hazards.category(i)) for j in classes] for i in classes], dtype=np.float64
    )
    top = probabilities.argmax(axis=1)
    confidence = np.minimum((probabilities * acts[top]).sum(axis=1), 1.0)  # a sum of floats passes 1
    return [Recognised(classes[t], float(p)) for t, p in zip(top, confidence, strict=True)]


# -- training ----------------------------------------------------------------------------------------


def _fit(c: float, x: Floats, kinds: Sequence[str]) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, kinds)


def out_of_fold(c: float, x: Floats, kinds: Sequence[str], hazards: Hazards) -> list[Recognised]:
    """Each row recognised by a model fitted on the other folds (5, stratified by kind)."""
    y = np.asarray(kinds)
    classes = sorted(set(kinds))
    probabilities = np.zeros((len(y), len(classes)))
    split = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y)
    for fit, test in split:
        lr = _fit(c, x[fit], list(y[fit]))
        columns = [classes.index(k) for k in lr.classes_]
        probabilities[np.ix_(test, columns)] = lr.predict_proba(x[test])
    return recognised(probabilities, classes, hazards)


def right(found: Sequence[Recognised], kinds: Sequence[str], hazards: Hazards) -> npt.NDArray[np.bool_]:
    """Whether each recognised kind's category acts on the true kind."""
    return np.asarray(
        [hazards.acts(k, hazards.category(r.kind)) for r, k in zip(found, kinds, strict=True)], dtype=bool
    )


def threshold_at(found: Sequence[Recognised], ok: npt.NDArray[np.bool_]) -> float:
    """The lowest confidence at which at least PRECISION of the rows at or above it are right."""
    confidence = np.asarray([r.confidence for r in found])
    for t in np.unique(confidence):
        if ok[confidence >= t].mean() >= PRECISION:
            return float(t)
    return 1.0 + 1e-9


@dataclass(frozen=True)
class Training:
    model: HazardKind
    cv_right: dict[float, float]  # per C: out-of-fold share of rows whose kind's category acts
    cv_found: list[Recognised]  # out of fold, at the chosen C


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    vectors: Floats,
    hazards: Hazards | None = None,
    log: Callable[[str], None] = print,
) -> Training:
    """`labels`: each row's kind as the data names it; rows naming no hazard are left out."""
    hazards = hazards or load()
    keep = [i for i, label in enumerate(labels) if hazards.name(label) is not None]
    kinds = [str(hazards.name(labels[i])) for i in keep]
    if len(set(kinds)) < 2:
        raise ValueError("training needs examples of at least two hazard kinds")
    x = vectors[keep]
    found = {c: out_of_fold(c, x, kinds, hazards) for c in C_GRID}
    scores = {c: float(right(f, kinds, hazards).mean()) for c, f in found.items()}
    best = max(scores, key=lambda c: scores[c])
    log(
        f"{len(kinds)} rows of {len(set(kinds))} kinds ({len(texts) - len(kinds)} naming none left out); "
        "out of fold, the recognised kind's category acts: "
        + ", ".join(f"C={c:g} {s:.3f}" for c, s in scores.items())
    )
    threshold = threshold_at(found[best], right(found[best], kinds, hazards))
    if threshold > 1.0:
        raise ValueError(f"no confidence keeps {PRECISION:.0%} of the out-of-fold moves right")
    lr = _fit(best, x, kinds)
    model = HazardKind(
        classes=tuple(str(c) for c in lr.classes_),
        weights=np.asarray(lr.coef_, dtype=np.float64),
        intercepts=np.asarray(lr.intercept_, dtype=np.float64),
        threshold=round(threshold, 6),
        c=best,
        trained_on=len(kinds),
        trained_at=datetime.now(UTC).isoformat(),
        encoder_version=encoder_version(),
        hazards=hazards,
    )
    return Training(model, scores, found[best])
