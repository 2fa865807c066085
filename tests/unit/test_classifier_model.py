from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.classifier.features import TITLE_CHARS, Featurizer
from services.classifier.metrics import expected_calibration_error
from services.classifier.model import MODEL_FILE, VOCAB_FILE, ModelLoadError, TextClassifier
from services.classifier.starter import ensure_default_model
from services.classifier.text import normalize
from tests.unit.conftest import datasets_dir


def test_starter_model_directory(starter_dir: Path, starter_model: TextClassifier) -> None:
    assert {"model.json", "model.npz", "vocab.json", "report.json", "taxonomy.yaml"} <= {
        p.name for p in starter_dir.iterdir()
    }
    report = json.loads((starter_dir / "report.json").read_text(encoding="utf-8"))
    assert {"n", "split", "per_class", "macro_f1", "ece", "duration_s"} <= set(report)
    assert len(starter_model.labels) == 10
    assert starter_model.version == report["version"]
    # A second call finds the model and does not retrain.
    mtime = (starter_dir / "model.json").stat().st_mtime_ns
    assert ensure_default_model(starter_dir) == starter_dir
    assert (starter_dir / "model.json").stat().st_mtime_ns == mtime


def test_predictions_are_calibrated_top3(starter_model: TextClassifier) -> None:
    texts = ["我们小区已经停水三天了", "My employer has not paid my wages", "", "???"]
    predictions = starter_model.predict(texts)
    assert len(predictions) == len(texts)
    probs = starter_model.predict_proba(texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    for p in predictions:
        assert p.category in starter_model.labels
        assert len(p.alternatives) == 3
        assert p.alternatives[0] == (p.category, p.confidence)
        scores = [s for _, s in p.alternatives]
        assert scores == sorted(scores, reverse=True)
        assert 0.0 < p.confidence <= 1.0
    assert predictions[0].category == "utilities"
    assert predictions[1].category == "labour_social_security"
    assert starter_model.predict([]) == []


def test_segmented_and_raw_text_normalise_alike() -> None:
    assert normalize("小区 停水 三天") == normalize("小区停水，三天！") == "小区停水三天"
    assert normalize("No  WATER, since Monday") == "no water since monday"


def test_inference_features_match_training_features() -> None:
    texts = [
        "小区停水三天了",
        "路灯坏了没人修",
        "no water since monday",
        "the streetlight is out",
        "停水 路灯",
    ]
    featurizer, trained = Featurizer.fit(texts)
    np.testing.assert_allclose(featurizer.transform(texts).toarray(), trained.toarray(), rtol=1e-5, atol=1e-6)


def test_title_block_reads_only_the_start_of_a_message() -> None:
    filler = "x" * TITLE_CHARS
    texts = ["停水三天" + filler + "路灯坏了", "停水一周" + filler + "路灯不亮"]
    featurizer, _ = Featurizer.fit(texts)
    assert "停水" in featurizer.title.vocabulary
    assert "停水" in featurizer.char.vocabulary and "路灯" in featurizer.char.vocabulary
    assert not any("路" in term for term in featurizer.title.vocabulary)
    # The same words opening or closing a message: only the opening ones reach the title block's columns.
    unknown = "y" * TITLE_CHARS
    opening, closing = featurizer.transform(["停水", unknown + "停水"]).toarray()
    n_text = len(featurizer.char.vocabulary) + len(featurizer.word.vocabulary)
    assert opening[:n_text].any() and closing[:n_text].any()
    assert opening[n_text:].any() and not closing[n_text:].any()


def test_save_load_roundtrip(starter_model: TextClassifier, tmp_path: Path) -> None:
    starter_model.save(tmp_path / "m")
    loaded = TextClassifier.load(tmp_path / "m")
    assert loaded.version == starter_model.version
    assert loaded.labels == starter_model.labels
    texts = ["路灯坏了", "The bus is always late"]
    np.testing.assert_allclose(loaded.predict_proba(texts), starter_model.predict_proba(texts))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_refuses_tampered_vocabulary(starter_dir: Path, tmp_path: Path) -> None:
    model = _copy(starter_dir, tmp_path / "m")
    vocab = json.loads((model / VOCAB_FILE).read_text(encoding="utf-8"))
    vocab["char"][0], vocab["char"][1] = vocab["char"][1], vocab["char"][0]
    (model / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="hash"):
        TextClassifier.load(model)


def test_refuses_pickled_arrays(starter_dir: Path, tmp_path: Path) -> None:
    model = _copy(starter_dir, tmp_path / "m")
    with np.load(model / MODEL_FILE) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["coef"] = np.array([{"not": "an array"}], dtype=object)  # stored as a pickle inside the .npz
    np.savez(model / MODEL_FILE, **arrays)
    with pytest.raises(ModelLoadError, match="pickle"):
        TextClassifier.load(model)


def test_refuses_wrong_shapes_and_missing_files(starter_dir: Path, tmp_path: Path) -> None:
    model = _copy(starter_dir, tmp_path / "m")
    with np.load(model / MODEL_FILE) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["cal_coef"] = arrays["cal_coef"][:2]
    np.savez(model / MODEL_FILE, **arrays)
    with pytest.raises(ModelLoadError, match="shape"):
        TextClassifier.load(model)
    with pytest.raises(ModelLoadError):
        TextClassifier.load(tmp_path / "absent")


@pytest.mark.parametrize("keep", [0, 100, -200])  # empty, cut before the arrays, cut before the zip index
def test_refuses_a_truncated_array_file(starter_dir: Path, tmp_path: Path, keep: int) -> None:
    model = _copy(starter_dir, tmp_path / "m")
    data = (model / MODEL_FILE).read_bytes()
    (model / MODEL_FILE).write_bytes(data[:keep])
    with pytest.raises(ModelLoadError, match="cannot read the model"):
        TextClassifier.load(model)


def test_train_rejects_unusable_data() -> None:
    with pytest.raises(ValueError, match="two categories"):
        TextClassifier.train(["a", "b"], ["x", "x"])
    with pytest.raises(ValueError, match="at least two examples"):
        TextClassifier.train(["a", "b", "c"], ["x", "x", "y"])
    with pytest.raises(ValueError, match="labels"):
        TextClassifier.train(["a"], ["x", "y"])


def test_progress_is_reported() -> None:
    steps: list[str] = []
    texts = ["停水", "没水了", "停电", "没电了", "路灯坏了", "井盖丢了"] * 2
    labels = ["water", "water", "power", "power", "road", "road"] * 2
    TextClassifier.train(texts, labels, progress=steps.append)
    assert steps[0] == "extracting features"
    assert any(s.startswith("cross-validation fold") for s in steps)


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([0.9, 0.9], [False, False]) == pytest.approx(0.9)
    assert expected_calibration_error([], []) == 0.0


TEDDY = datasets_dir() / "teddycup2020c" / "classify_train.csv"


@pytest.mark.skipif(not TEDDY.exists(), reason="shared datasets not available")
def test_trained_on_segmented_text_reads_raw_text() -> None:
    with TEDDY.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    raw = [r for r in rows if r["text_raw"]][:100]
    held = {r["text"] for r in raw}
    train = [r for r in rows if r["text"] not in held and not r["text_raw"]]
    train = train[::20]  # about 300 rows keeps this test to a few seconds
    model = TextClassifier.train([r["text"] for r in train], [r["label"] for r in train])
    predicted = [p.category for p in model.predict([r["text_raw"] for r in raw])]
    accuracy = np.mean([p == r["label"] for p, r in zip(predicted, raw, strict=True)])
    assert accuracy > 0.6


@pytest.mark.parametrize(
    ("file", "change", "problem"),
    [
        ("model.json", {"format": "someone-else/1"}, "has no format"),
        ("model.json", {"labels": ["a", "a"]}, "labels must be distinct"),
        ("model.json", {"labels": ["only"]}, "labels: List should have at least 2 items"),
        ("vocab.json", {"word": [1, 2]}, "word.0: Input should be a valid string"),
    ],
)
def test_a_malformed_model_or_vocabulary_file_is_refused_naming_the_file_and_the_field(
    starter_dir: Path, tmp_path: Path, file: str, change: dict[str, object], problem: str
) -> None:
    model = _copy(starter_dir, tmp_path / "m")
    data = json.loads((model / file).read_text(encoding="utf-8"))
    (model / file).write_text(json.dumps(data | change, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=f"{file}: not a valid model file: .*{problem}"):
        TextClassifier.load(model)
