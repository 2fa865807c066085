"""Hazard kinds: the mapping to categories, the kind model's file and its training rule; no e5 engine is
loaded here (vectors are made up; the integration test of the reviewer loads the engine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.classifier import hazard_kind
from services.classifier.hazard_kind import HazardKind, Recognised, recognised
from services.classifier.hazards import load
from services.classifier.urgency_e5 import DIM, E5ModelError
from services.console.i18n import HAZARDS
from shared.taxonomy import load_taxonomy

TAXONOMY = Path(__file__).resolve().parents[2] / "shared" / "data" / "taxonomy.yaml"
KINDS = ("fire", "gas", "medical")


def test_every_kind_maps_to_categories_of_the_taxonomy_and_names_are_unique() -> None:
    hazards, codes = load(), set(load_taxonomy(TAXONOMY).codes())
    for name, kind in hazards.kinds.items():
        assert kind.category in codes and set(kind.also) <= codes, name
        # Emergency management hands every emergency over (110/119/120): it acts on every kind.
        assert hazards.acts(name, "public_safety"), name
    assert hazards.name("smoke") == "fire" and hazards.name("water_child") == "child_water"
    assert hazards.name("other") is None and hazards.name("near_miss") is None


def test_the_shipped_model_knows_only_kinds_of_the_mapping() -> None:
    model = HazardKind.load()
    assert set(model.classes) <= set(load().kinds) and 0 < model.threshold < 1


def test_confidence_is_the_probability_of_the_kinds_the_recognised_kinds_category_acts_on() -> None:
    # Fire's category (public_safety) acts on gas and medical too: all the mass counts.
    found = recognised(np.asarray([[0.5, 0.3, 0.2], [0.2, 0.1, 0.7]]), KINDS, load())
    assert found[0] == Recognised("fire", pytest.approx(1.0))
    # Medical's category (health) acts on medical only of the three.
    assert found[1] == Recognised("medical", pytest.approx(0.7))


def _vectors(n_per_kind: int, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.05, (n_per_kind * len(KINDS), DIM))
    labels = []
    for i, kind in enumerate(KINDS):
        x[i * n_per_kind : (i + 1) * n_per_kind, i] += 1.0
        labels += [kind] * n_per_kind
    return x, labels


def test_training_leaves_out_rows_naming_no_hazard_and_recognises_the_rest(tmp_path: Path) -> None:
    x, labels = _vectors(12)
    x = np.vstack([x, np.zeros((3, DIM))])
    labels += ["other", "near_miss", "routine"]
    trained = hazard_kind.train(["t"] * len(labels), labels, x, log=lambda _: None)
    model = trained.model
    assert model.classes == KINDS and model.trained_on == 36
    assert [r.kind for r in model.recognise(x[:36])] == labels[:36]
    model.save(tmp_path / "kind.json")
    loaded = HazardKind.load(tmp_path / "kind.json")
    assert loaded.probabilities(x) == pytest.approx(model.probabilities(x), abs=1e-5)
    assert "pickle" not in (tmp_path / "kind.json").read_text()


@pytest.mark.parametrize(
    "change",
    [{"format": "other"}, {"classes": ["fire", "gas", "lava"]}, {"intercepts": [0.0]}, {"chars": 64}],
)
def test_a_file_that_is_not_a_kind_model_of_this_mapping_is_refused_with_its_path(
    tmp_path: Path, change: dict[str, object]
) -> None:
    path = tmp_path / "kind.json"
    x, labels = _vectors(12)
    hazard_kind.train(["t"] * len(labels), labels, x, log=lambda _: None).model.save(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(E5ModelError, match=str(path)):
        HazardKind.load(path)


def test_the_console_names_every_kind_in_both_languages() -> None:
    assert set(HAZARDS) == set(load().kinds)
