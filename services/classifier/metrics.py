"""Quality figures shared by the training report, `model evaluate` and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def expected_calibration_error(confidence: npt.ArrayLike, correct: npt.ArrayLike, bins: int = 15) -> float:
    """Top-label ECE: the support-weighted gap between mean confidence and accuracy over equal-width bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    # Bin i holds confidences in (i/bins, (i+1)/bins]; the clip puts confidence 0 into the first bin.
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - hit[mask].mean())
    return float(ece)


def summarize(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """n, accuracy, macro-F1 (over `labels`) and per-class precision/recall/F1/support."""
    present = [lab for lab in labels if lab in set(y_true) or lab in set(y_pred)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(
            float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)), 4
        ),
        "per_class": {
            lab: {
                "precision": round(float(p[i]), 4),
                "recall": round(float(r[i]), 4),
                "f1": round(float(f[i]), 4),
                "support": int(s[i]),
            }
            for i, lab in enumerate(present)
        },
    }
