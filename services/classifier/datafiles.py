"""Reading labelled examples (CSV, operator corrections JSONL) and mapping labels onto the taxonomy."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import yaml

DEFAULT_TAXONOMY = Path(__file__).resolve().parents[2] / "shared" / "data" / "taxonomy.yaml"
# A model directory keeps a copy of the taxonomy its labels were mapped onto.
TAXONOMY_FILE = "taxonomy.yaml"


class DataError(ValueError):
    """Input data cannot be used; the message says which file and why."""


def _read_columns(path: Path, wanted: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The stripped values of the wanted columns of every row; a missing file or column is a DataError."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise DataError(
                    f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(columns)})"
                )
            return [tuple((row.get(c) or "").strip() for c in wanted) for row in reader]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from None


def read_labelled_csv(
    path: Path, text_col: str, label_col: str, exclude: Sequence[tuple[str, str]] = ()
) -> tuple[list[str], list[str]]:
    """Texts and labels of every row where both are non-empty, but for rows holding an `exclude` (column,
    value): a held-out part of a file is left out of training by naming it, not by keeping a second copy."""
    wanted = (text_col, label_col, *(column for column, _ in exclude))
    rows = [
        (text, label)
        for text, label, *others in _read_columns(path, wanted)
        if text and label and not any(value == v for value, (_, v) in zip(others, exclude, strict=True))
    ]
    if not rows:
        raise DataError(f"{path}: no rows with both {text_col!r} and {label_col!r}")
    return [text for text, _ in rows], [label for _, label in rows]


def read_column(path: Path, column: str) -> list[str]:
    """One column of every row (empty values included: one output per input row)."""
    return [value for (value,) in _read_columns(path, (column,))]


def read_corrections(path: Path) -> tuple[list[str], list[str]]:
    """Operator corrections, one JSON object per line: {"text": ..., "category": ...}."""
    texts: list[str] = []
    labels: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not JSON: {exc}") from None
        text = item.get("text") if isinstance(item, dict) else None
        category = item.get("category") if isinstance(item, dict) else None
        if not (isinstance(text, str) and text.strip() and isinstance(category, str) and category.strip()):
            raise DataError(f"{path}:{number}: needs non-empty string fields 'text' and 'category'")
        texts.append(text.strip())
        labels.append(category.strip())
    return texts, labels


def _taxonomy_categories(path: Path) -> list[dict[str, object]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read taxonomy: {exc}") from None
    categories = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(categories, list) or not categories:
        raise DataError(f"{path}: a taxonomy needs a non-empty 'categories' list")
    if not all(isinstance(c, dict) and isinstance(c.get("code"), str) for c in categories):
        raise DataError(f"{path}: every category needs a string 'code'")
    return categories


def _strings(value: object) -> list[str]:
    return [str(v) for v in value if v] if isinstance(value, list) else []


def taxonomy_label_map(path: Path) -> dict[str, str]:
    """Every code, name and alias of the taxonomy mapped to its category code."""
    mapping: dict[str, str] = {}
    for category in _taxonomy_categories(path):
        code = str(category["code"])
        names = [code, str(category.get("name") or ""), *_strings(category.get("aliases"))]
        mapping.update({n: code for n in names if n})
    return mapping


def taxonomy_keywords(path: Path) -> tuple[list[str], list[str]]:
    """Each category keyword as a one-phrase training example labelled with its category code."""
    texts: list[str] = []
    labels: list[str] = []
    for category in _taxonomy_categories(path):
        for keyword in _strings(category.get("keywords")):
            texts.append(keyword)
            labels.append(str(category["code"]))
    return texts, labels
