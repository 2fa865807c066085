"""The urgency model: is this text an emergency? Char 1-3-grams, logistic regression, a JSON file of weights.

It is the second opinion of `urgency.Detector`, asked only about texts that mention a hazard word but hold no
cue combination the lexicon knows, so it learns how people talk around the lexicon from examples rather than
from one more list. Features are the distinct char n-grams of the text as cues see it (`cues.cue_text`),
binary and L2-normalised; scoring is a dictionary look-up per n-gram, the same arithmetic as training, so
the file holds only weights (no pickle, nothing executed on load).

The default model (data/urgency_model.json) is trained on team-written examples only, never on the held-out
parts D and E of the eval file:

    hotline model train-urgency --data bench/data/urgency_eval.csv \
        --data services/classifier/data/urgency_train.csv --text-col text --label-col label \
        --exclude half=D --exclude half=E --out services/classifier/data/urgency_model.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from services.classifier.cues import cue_text

FORMAT = "hotline-urgency-model/1"
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "urgency_model.json"
NGRAMS = (1, 3)
MIN_DF = 2
# Chosen by 2-fold cross-validation inside the training half (A) of bench/data/urgency_eval.csv: with C=10 or
# a threshold of 0.5-0.6 the model added 2-5 points of false alarms to the lexicon's; C=1 at 0.7 added none.
C = 1.0
THRESHOLD = 0.7


class UrgencyModelError(ValueError):
    """The model file is missing, unreadable or not of this format; the message says which and why."""


def ngrams(clean: str) -> set[str]:
    low, high = NGRAMS
    return {clean[i : i + n] for n in range(low, high + 1) for i in range(len(clean) - n + 1)}


@dataclass(frozen=True)
class UrgencyModel:
    weights: dict[str, float]
    intercept: float
    threshold: float
    trained_on: int
    trained_at: str

    def score(self, clean: str) -> float:
        """Probability that a text already normalised by `cue_text` reports an emergency."""
        found = [w for g in ngrams(clean) if (w := self.weights.get(g)) is not None]
        z = self.intercept + (sum(found) / math.sqrt(len(found)) if found else 0.0)
        return 1.0 / (1.0 + math.exp(-z))

    @classmethod
    def train(cls, texts: Sequence[str], emergency: Sequence[bool]) -> UrgencyModel:
        if len(set(emergency)) < 2:
            raise ValueError("training needs examples of both emergencies and non-emergencies")
        grams = [ngrams(cue_text(t)) for t in texts]
        counts: dict[str, int] = {}
        for found in grams:
            for g in found:
                counts[g] = counts.get(g, 0) + 1
        vocabulary = sorted(g for g, n in counts.items() if n >= MIN_DF)
        index = {g: i for i, g in enumerate(vocabulary)}
        rows, cols = [], []
        for r, found in enumerate(grams):
            for c in sorted(index[g] for g in found if g in index):
                rows.append(r)
                cols.append(c)
        x = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocabulary)), dtype=np.float64
        )
        present = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
        x = sparse.diags(1.0 / np.maximum(present, 1.0)) @ x
        lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(x, np.asarray(emergency))
        # Every n-gram of the vocabulary is kept, even of tiny weight: scoring divides by how many are found
        weights = {g: round(float(w), 5) for g, w in zip(vocabulary, lr.coef_[0], strict=True)}
        trained_at = datetime.now(UTC).isoformat()
        return cls(weights, float(lr.intercept_[0]), THRESHOLD, len(texts), trained_at)

    def save(self, path: Path) -> None:
        body = {
            "format": FORMAT,
            "ngrams": list(NGRAMS),
            "threshold": self.threshold,
            "intercept": self.intercept,
            "trained_on": self.trained_on,
            "trained_at": self.trained_at,
            "weights": dict(sorted(self.weights.items())),
        }
        path.write_text(json.dumps(body, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> UrgencyModel:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UrgencyModelError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UrgencyModelError(f"{path}: cannot read the urgency model: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("ngrams") != list(NGRAMS):
            raise UrgencyModelError(f"{path}: not an urgency model of format {FORMAT}")
        try:
            weights = {str(g): float(w) for g, w in body["weights"].items()}
            return cls(
                weights,
                float(body["intercept"]),
                float(body["threshold"]),
                int(body["trained_on"]),
                str(body["trained_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UrgencyModelError(f"{path}: incomplete urgency model: {exc}") from None
