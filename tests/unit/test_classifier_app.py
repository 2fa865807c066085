"""Which model the classifier worker loads, where the default one is kept, and what it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from services.classifier.app import ClassifierSettings, build, load_model
from services.classifier.datafiles import DEFAULT_TAXONOMY
from services.classifier.model import META_FILE, ModelLoadError, TextClassifier
from services.classifier.starter import default_model_dir, ensure_default_model, models_root
from tools.demo import sample_calls

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_without_a_model_dir_the_default_model_is_trained_once_into_the_data_dir(data_dir: Path) -> None:
    first = load_model(ClassifierSettings())
    [directory] = (data_dir / "models").iterdir()
    assert directory == default_model_dir() and directory.name.startswith("default-")
    assert (directory / META_FILE).exists()
    assert load_model(ClassifierSettings()).version == first.version
    worker, _ = build(ClassifierSettings())
    assert [c.stream for c in worker.consumers] == ["tickets.received"]


def test_a_given_model_dir_is_used(starter_dir: Path, data_dir: Path) -> None:
    model = load_model(ClassifierSettings(model_dir=starter_dir))
    assert model.version == TextClassifier.load(starter_dir).version
    assert not (data_dir / "models").exists()


def test_a_city_taxonomy_gets_a_default_model_over_its_own_categories(tmp_path: Path, data_dir: Path) -> None:
    taxonomy = yaml.safe_load(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
    taxonomy["categories"] = [c for c in taxonomy["categories"] if c["code"] in ("utilities", "transport")]
    taxonomy["categories"].append(
        {"code": "animals", "name": "Animals", "keywords": ["stray dog", "流浪狗", "野猫", "dead bird"]}
    )
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(taxonomy, allow_unicode=True), encoding="utf-8")
    model = load_model(ClassifierSettings(taxonomy_path=path))
    assert model.labels == ["animals", "transport", "utilities"]
    assert default_model_dir(path) != default_model_dir()


def test_a_model_whose_categories_are_not_in_the_taxonomy_is_refused(tmp_path: Path) -> None:
    texts = ["停水了", "没有水", "水管坏了", "公交晚点", "地铁太挤", "公交不来"]
    model = TextClassifier.train(texts, ["water", "water", "water", "bus", "bus", "bus"])
    model.save(tmp_path / "m")
    with pytest.raises(ModelLoadError, match=r"not in the taxonomy.*bus, water"):
        load_model(ClassifierSettings(model_dir=tmp_path / "m"))


def test_the_process_exits_2_with_the_reason_when_the_model_cannot_load(tmp_path: Path) -> None:
    env = {**os.environ, "HOTLINE_MODEL_DIR": str(tmp_path / "missing")}
    done = subprocess.run(
        [sys.executable, "-m", "services.classifier"], env=env, cwd=REPO, capture_output=True, timeout=120
    )
    assert done.returncode == 2
    assert b"cannot start" in done.stderr and b"Traceback" not in done.stderr


def test_the_cache_falls_back_to_the_temp_dir_when_nothing_else_is_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(blocker))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert models_root() == tmp_path / "tmp" / f"hotline-{os.getuid()}" / "models"


def test_an_interrupted_directory_is_replaced(tmp_path: Path) -> None:
    directory = tmp_path / "default-x"
    directory.mkdir()
    (directory / "model.npz").write_bytes(b"half written")
    ensure_default_model(directory)
    TextClassifier.load(directory)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


# What a person would file each demo call under; the default model must agree on nearly all of them.
EXPECTED = [
    "utilities", "environment", "transport", "labour_social_security", "education_culture",
    "commerce_tourism", "health", "urban_construction", "utilities", "housing_property",
    "utilities", "environment", "transport", "labour_social_security", "environment",
    "commerce_tourism", "public_safety", "utilities", "urban_construction", "utilities",
    "urban_construction", "environment", "utilities", "labour_social_security", "transport",
    "health", "environment", "housing_property", "commerce_tourism", "utilities",
    "education_culture", "environment",
]  # fmt: skip


def test_the_default_model_files_the_demo_calls_sensibly(starter_model: TextClassifier) -> None:
    calls = sample_calls()
    assert len(calls) == len(EXPECTED)
    predicted = [p.category for p in starter_model.predict([c["text"] for c in calls])]
    wrong = [
        (c["text"], want, got) for c, want, got in zip(calls, EXPECTED, predicted, strict=True) if want != got
    ]
    assert len(wrong) <= 3, json.dumps(wrong, ensure_ascii=False, indent=1)
