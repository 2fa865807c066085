from __future__ import annotations

from pathlib import Path

import pytest

from services.classifier.cues import load
from services.classifier.urgency import Detector, detector
from services.classifier.urgency_model import UrgencyModel, UrgencyModelError

EMERGENCIES = ["楼里有人晕倒了", "someone fainted in the lobby", "老人倒地不起", "a man fell, not moving"] * 3
ORDINARY = ["楼里路灯坏了", "the lobby light is broken", "老人办证难", "a man parks on the sidewalk"] * 3


def test_a_model_trained_saved_and_loaded_scores_the_same(tmp_path: Path) -> None:
    model = UrgencyModel.train(EMERGENCIES + ORDINARY, [True] * 12 + [False] * 12)
    model.save(tmp_path / "m.json")
    loaded = UrgencyModel.load(tmp_path / "m.json")
    assert loaded.score("有人晕倒了") == pytest.approx(model.score("有人晕倒了"))
    assert loaded.score("有人晕倒了") > 0.5 > loaded.score("路灯坏了")


def test_training_needs_both_kinds() -> None:
    with pytest.raises(ValueError, match="both"):
        UrgencyModel.train(EMERGENCIES, [True] * 12)


@pytest.mark.parametrize("body", ["not json", '{"format": "other"}', '{"format": "hotline-urgency-model/1"}'])
def test_a_file_that_is_not_a_model_is_refused_with_its_path(tmp_path: Path, body: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(UrgencyModelError, match=str(path)):
        UrgencyModel.load(path)
    with pytest.raises(UrgencyModelError, match="no such file"):
        UrgencyModel.load(tmp_path / "missing.json")


def test_the_model_is_asked_only_about_sentences_with_a_hazard_word_and_its_score_is_the_cue() -> None:
    asked: list[str] = []

    def scorer(sentence: str) -> float:
        asked.append(sentence)
        return 0.9 if "窜" in sentence else 0.1

    d = Detector(load(), scorer, 0.5)
    assert d("路灯坏了", None).cue == "none" and asked == []
    assert (d("大厅里有东西在窜。路灯也坏了", None).level, d("大厅里有东西在窜。路灯也坏了", None).cue) == (
        "emergency",
        "model:0.90",
    )
    assert asked[0] == "大厅里有东西在窜"
    assert d("楼上一直哗哗的", None).cue == "model:0.10"
    # A cue taken back is not second-guessed by the model.
    assert d("煤气没有泄漏", None).cue == "negation:combo:煤气+泄漏"


def test_a_smell_alone_does_not_make_the_model_look() -> None:
    asked: list[str] = []

    def scorer(sentence: str) -> float:
        asked.append(sentence)
        return 0.9

    d = Detector(load(), scorer, 0.5)
    assert d("电梯里有点臭", None).cue == "none"
    assert asked == []
    d("A strong odor and a hissing noise in the hallway", None)
    assert asked == ["a strong odor and a hissing noise in the hallway"]  # asked for the hissing
    asked.clear()
    assert d("A strong odor in the area", None).cue == "none" and asked == []


def test_the_shipped_detector_loads_the_shipped_model() -> None:
    assert detector()("燃气管道好像泄漏了，闻到很浓的煤气味", None).level == "emergency"
