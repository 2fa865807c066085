"""The trainable text classifier: TF-IDF (char, jieba word, title char n-grams), linear SVM, calibrated.

Calibration: a multinomial logistic regression maps the SVM's per-class scores to probabilities. It is fitted
on out-of-fold scores (grouped K-fold, near-duplicates kept in one fold), so it learns how reliable scores
of unseen texts are. The same folds give the training report, an honest estimate that never looks at
the training fit.

Storage is arrays in an .npz (loaded with allow_pickle=False) plus JSON, so loading a model never runs code.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import LinearSVC

from services.classifier.cv_groups import duplicate_groups
from services.classifier.features import TITLE_CHARS, TITLE_WEIGHT, Block, Featurizer, Matrix
from services.classifier.metrics import expected_calibration_error, summarize

FORMAT = "hotline-text-classifier/2"  # /2: the title block
MODEL_FILE = "model.npz"
VOCAB_FILE = "vocab.json"
META_FILE = "model.json"
REPORT_FILE = "report.json"
BLOCKS = ("char", "word", "title")  # feature blocks, in column order

FOLDS = 5
SVM_C = 1.0
TOP_K = 3
# Steps reported through `progress` by a full-size training run (fewer folds on tiny data report fewer).
TRAIN_STEPS = FOLDS + 4

Progress = Callable[[str], None]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float
    alternatives: list[tuple[str, float]]


class ModelLoadError(ValueError):
    """The model directory is missing, incomplete, tampered with or not a model of this format."""


def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    result: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return result


def _svm_arrays(svm: LinearSVC) -> tuple[F32, F32]:
    coef = np.asarray(svm.coef_, dtype=np.float32)
    intercept = np.asarray(svm.intercept_, dtype=np.float32)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row (score of the second class); make it one per class
        coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


def _calibrator_arrays(lr: LogisticRegression) -> tuple[F32, F32]:
    coef = np.asarray(lr.coef_, dtype=np.float32)
    intercept = np.asarray(lr.intercept_, dtype=np.float32)
    if coef.shape[0] == 1:  # binary: P(class 1) = sigmoid(z) equals a softmax over logits [0, z]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return coef, intercept


def _fit_svm(x: Matrix, y: npt.NDArray[np.int64]) -> LinearSVC:
    # Balanced class weights: the report's headline is macro-F1, so small classes must not be drowned out.
    return LinearSVC(C=SVM_C, class_weight="balanced").fit(x, y)


def _scores(x: Matrix, coef: F32, intercept: F32) -> npt.NDArray[np.float64]:
    return np.asarray(x @ coef.T, dtype=np.float64) + intercept


def _fit_calibrator(scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000).fit(scores, y)


class _Card(BaseModel):
    """What loading needs of model.json (the rest is the model card, for people)."""

    model_config = ConfigDict(extra="ignore")

    format: str
    labels: list[str] = Field(min_length=2)
    trained_at: str = ""

    @field_validator("format")
    @classmethod
    def _ours(cls, value: str) -> str:
        if value != FORMAT:
            raise ValueError(f"{META_FILE} has no format {FORMAT!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("labels must be distinct")
        return value


class _Vocabulary(BaseModel):
    """vocab.json: each feature block's terms, in column order (BLOCKS)."""

    model_config = ConfigDict(extra="ignore")

    char: list[str]
    word: list[str]
    title: list[str]


M = TypeVar("M", bound=BaseModel)


def _parsed(model: type[M], data: Any, path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelLoadError(f"{path}: not a valid model file: {problems}") from None


def _check_arrays(arrays: dict[str, Any], labels: list[str], vocab: _Vocabulary) -> None:
    """Raise ValueError unless model.npz holds exactly the float32 arrays the labels and vocabulary size."""
    sizes = {b: len(getattr(vocab, b)) for b in BLOCKS}
    k = len(labels)
    shapes = {
        "coef": (k, sum(sizes.values())),
        "intercept": (k,),
        "cal_coef": (k, k),
        "cal_intercept": (k,),
    } | {f"{b}_idf": (sizes[b],) for b in BLOCKS}
    if set(arrays) != set(shapes):
        raise ValueError(f"{MODEL_FILE} must hold exactly {sorted(shapes)}")
    if any(a.dtype != np.float32 for a in arrays.values()):
        raise ValueError("arrays must be float32")
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")


class TextClassifier:
    def __init__(
        self,
        featurizer: Featurizer,
        labels: list[str],
        coef: F32,
        intercept: F32,
        cal_coef: F32,
        cal_intercept: F32,
        *,
        trained_at: str,
        report: dict[str, Any] | None = None,
    ) -> None:
        self._featurizer = featurizer
        self._labels = list(labels)
        self._coef = coef
        self._intercept = intercept
        self._cal_coef = cal_coef
        self._cal_intercept = cal_intercept
        self._trained_at = trained_at
        self.report: dict[str, Any] = report or {}
        self._hash = self._content_hash()
        self._version = f"{trained_at[:10].replace('-', '')}-{self._hash[:12]}"

    # ---- training ---------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls, texts: list[str], labels: list[str], *, progress: Progress | None = None
    ) -> TextClassifier:
        say = progress or (lambda _msg: None)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError("training needs at least two categories")
        counts = {c: labels.count(c) for c in classes}
        if min(counts.values()) < 2:
            rare = sorted(c for c, n in counts.items() if n < 2)
            raise ValueError(f"every category needs at least two examples; too few for: {', '.join(rare)}")
        started = time.perf_counter()
        y = np.array([classes.index(lab) for lab in labels], dtype=np.int64)

        say("extracting features")
        featurizer, x = Featurizer.fit(texts)
        say("grouping duplicate texts")
        groups = duplicate_groups(texts)

        folds = min(FOLDS, min(counts.values()), len(set(groups.tolist())))
        oof = np.zeros((len(texts), len(classes)), dtype=np.float64)
        splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=0).split(x, y, groups))
        for i, (fit_idx, held_idx) in enumerate(splits, 1):
            say(f"cross-validation fold {i}/{folds}")
            fit_y = y[fit_idx]
            # A category whose examples all share one group can be missing from a fold's fit; its column keeps
            # score 0 there, which the calibrator reads as "no evidence".
            present = np.unique(fit_y)
            coef, intercept = _svm_arrays(_fit_svm(x[fit_idx], fit_y))
            oof[np.ix_(held_idx, present)] = _scores(x[held_idx], coef, intercept)

        say("fitting the final model")
        coef, intercept = _svm_arrays(_fit_svm(x, y))
        say("calibrating probabilities")
        cal_coef, cal_intercept = _calibrator_arrays(_fit_calibrator(oof, y))

        # The report's probabilities come from a calibrator that did not see the fold it scores.
        oof_prob = np.zeros_like(oof)
        for fit_idx, held_idx in splits:
            c_coef, c_int = _calibrator_arrays(_fit_calibrator(oof[fit_idx], y[fit_idx]))
            if c_coef.shape[0] == len(classes):
                oof_prob[held_idx] = _softmax(oof[held_idx] @ c_coef.T + c_int)
            else:  # a class absent from this fit: fall back to the full calibrator for these rows
                oof_prob[held_idx] = _softmax(oof[held_idx] @ cal_coef.T + cal_intercept)
        predicted = oof_prob.argmax(axis=1)
        report = summarize([classes[i] for i in y], [classes[i] for i in predicted], classes)
        report["ece"] = round(expected_calibration_error(oof_prob.max(axis=1), predicted == y), 4)
        report["split"] = (
            f"{folds}-fold stratified group cross-validation on the training data, out-of-fold predictions "
            f"(near-duplicate texts, cosine >= 0.8, kept in one fold; {len(set(groups.tolist()))} groups)"
        )
        report["n_features"] = featurizer.n_features
        report["duration_s"] = round(time.perf_counter() - started, 2)
        trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        report["trained_at"] = trained_at
        model = cls(
            featurizer,
            classes,
            coef,
            intercept,
            cal_coef,
            cal_intercept,
            trained_at=trained_at,
            report=report,
        )
        report["version"] = model.version
        return model

    # ---- inference ----------------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def version(self) -> str:
        return self._version

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Calibrated probabilities, one row per text, columns in the order of `labels`."""
        if not texts:
            return np.zeros((0, len(self._labels)))
        scores = _scores(self._featurizer.transform(texts), self._coef, self._intercept)
        return _softmax(scores @ self._cal_coef.T + self._cal_intercept)

    def predict(self, texts: list[str]) -> list[Prediction]:
        out: list[Prediction] = []
        for row in self.predict_proba(texts):
            order = np.argsort(-row, kind="stable")[:TOP_K]
            alternatives = [(self._labels[i], float(row[i])) for i in order]
            out.append(Prediction(alternatives[0][0], alternatives[0][1], alternatives))
        return out

    # ---- storage ------------------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, F32]:
        return {
            "coef": self._coef,
            "intercept": self._intercept,
            "cal_coef": self._cal_coef,
            "cal_intercept": self._cal_intercept,
            "char_idf": self._featurizer.char.idf,
            "word_idf": self._featurizer.word.idf,
            "title_idf": self._featurizer.title.idf,
        }

    def _vocab_json(self) -> bytes:
        vocab = {
            "char": self._featurizer.char.vocabulary,
            "word": self._featurizer.word.vocabulary,
            "title": self._featurizer.title.vocabulary,
        }
        return json.dumps(vocab, ensure_ascii=False, separators=(",", ":")).encode()

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        for name, array in sorted(self._arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(self._vocab_json())
        h.update(json.dumps(self._labels, ensure_ascii=False).encode())
        return h.hexdigest()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / MODEL_FILE, **self._arrays())  # type: ignore[arg-type]
        (directory / VOCAB_FILE).write_bytes(self._vocab_json())
        if self.report:
            (directory / REPORT_FILE).write_text(
                json.dumps(self.report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
            )
        meta = {
            "format": FORMAT,
            "version": self.version,
            "labels": self._labels,
            "trained_at": self._trained_at,
            "content_sha256": self._hash,
            "features": {
                "char_ngrams": [1, 3],
                "word_ngrams": [1, 2],
                "title": {"chars": TITLE_CHARS, "char_ngrams": [1, 3], "weight": TITLE_WEIGHT},
                "tf": "sublinear",
                "norm": "l2 per block",
            },
        }
        # Written last: a directory with model.json is complete.
        (directory / META_FILE).write_text(
            json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> TextClassifier:
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            vocab = json.loads((directory / VOCAB_FILE).read_bytes())
            # allow_pickle=False: object arrays (the only way an .npz carries code) raise instead of loading.
            # The file opened here, not by np.load, which leaves it open when the zip inside is damaged.
            with (directory / MODEL_FILE).open("rb") as f, np.load(f, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            report_path = directory / REPORT_FILE
            report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a cut or damaged .npz
            raise ModelLoadError(f"{directory}: cannot read the model: {exc}") from None
        model = cls._from_parts(directory, meta, vocab, arrays, report)
        if model._hash != meta.get("content_sha256"):
            raise ModelLoadError(f"{directory}: model files do not match the hash in {META_FILE} (modified?)")
        return model

    @classmethod
    def _from_parts(
        cls, directory: Path, meta: Any, vocab: Any, arrays: dict[str, Any], report: Any
    ) -> TextClassifier:
        """The model from its files as read, each checked before any is used: a wrong file is refused
        with what is wrong with it, never half-loaded."""
        card = _parsed(_Card, meta, directory / META_FILE)
        words = _parsed(_Vocabulary, vocab, directory / VOCAB_FILE)
        try:
            _check_arrays(arrays, card.labels, words)
        except ValueError as exc:
            raise ModelLoadError(f"{directory}: not a valid model: {exc}") from None
        featurizer = Featurizer(
            Block("char", words.char, arrays["char_idf"]),
            Block("word", words.word, arrays["word_idf"]),
            Block("char", words.title, arrays["title_idf"]),
        )
        return cls(
            featurizer,
            card.labels,
            arrays["coef"],
            arrays["intercept"],
            arrays["cal_coef"],
            arrays["cal_intercept"],
            trained_at=card.trained_at,
            report=report if isinstance(report, dict) else {},
        )
