from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.classifier.model import TextClassifier
from services.classifier.starter import ensure_default_model


def datasets_dir() -> Path:
    """The shared datasets next to the repository, or $HOTLINE_DATASETS."""
    return Path(
        os.environ.get("HOTLINE_DATASETS")
        or Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    )


@pytest.fixture(scope="session")
def starter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_default_model(tmp_path_factory.mktemp("models") / "default")


@pytest.fixture(scope="session")
def starter_model(starter_dir: Path) -> TextClassifier:
    return TextClassifier.load(starter_dir)
