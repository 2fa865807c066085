"""A keyword classifier over the taxonomy's `keywords`: the fallback when no trained model is configured."""

from __future__ import annotations

from dataclasses import dataclass

from shared.taxonomy import Taxonomy


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float
    alternatives: list[tuple[str, float]]


class KeywordClassifier:
    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.version = f"keywords-v{taxonomy.version}"
        self._keywords = [(c.code, [k.lower() for k in c.keywords]) for c in taxonomy.categories]

    def predict(self, texts: list[str]) -> list[Prediction]:
        return [self._one(text.lower()) for text in texts]

    def _one(self, text: str) -> Prediction:
        # Add-one smoothing keeps a single hit from claiming certainty.
        scores = [(code, 1 + sum(text.count(k) for k in kws)) for code, kws in self._keywords]
        total = sum(s for _, s in scores)
        ranked = sorted(((code, s / total) for code, s in scores), key=lambda x: -x[1])
        return Prediction(ranked[0][0], ranked[0][1], ranked[:3])
