"""The featurizer's own n-gram counting and hash lookup against sklearn's straightforward path."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from services.classifier.features import CHAR_NGRAMS, TITLE_WEIGHT, WORD_NGRAMS, Block, Codes, Matrix, _Table
from services.classifier.model import TextClassifier, _softmax
from services.classifier.text import _CJK, _NON_WORD, fold, normalize, words

STARTER = Path(__file__).resolve().parents[2] / "services" / "classifier" / "data" / "starter.csv"
# Texts the starter rows lack: empty, punctuation only, one character, characters outside the BMP (code
# points above 16 bits), digits, English only, mixed scripts, repeats (term counts above 1).
ODD = [
    "",
    "???",
    "水",
    "𠀀𠀁 emoji 😀😀 水水水",
    "12345 678 2026年11月28日",
    "The streetlight on Main Street is out again, again and again",
    "停水停水停水 no water no water 停水",
    "a",
    "小区 停水 三天",
]


def _texts() -> list[str]:
    with STARTER.open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)] + ODD


def _sklearn(block: Block, docs: list[str]) -> Matrix:
    """What sklearn's TfidfVectorizer (sublinear tf, l2) computes with this vocabulary and idf."""
    if block.kind == "char":
        counter = CountVectorizer(
            analyzer="char", ngram_range=CHAR_NGRAMS, lowercase=False, vocabulary=block.vocabulary
        )
    else:
        counter = CountVectorizer(
            token_pattern=r"\S+", ngram_range=WORD_NGRAMS, lowercase=False, vocabulary=block.vocabulary
        )
    tf = counter.transform(docs).astype(np.float32)
    tf.data = (1.0 + np.log(tf.data)) * block.idf[tf.indices]
    return l2_normalize(tf)


@pytest.fixture(scope="module")
def docs() -> dict[str, list[str]]:
    normalized = [normalize(t) for t in _texts()]
    return {"char": normalized, "word": [words(t) for t in normalized], "title": [t[:30] for t in normalized]}


@pytest.mark.parametrize("name", ["char", "word", "title"])
def test_each_block_equals_sklearns_matrix(
    starter_model: TextClassifier, docs: dict[str, list[str]], name: str
) -> None:
    block: Block = getattr(starter_model._featurizer, name)
    for batch in (docs[name], docs[name][:1], docs[name][-len(ODD) :]):
        ours, theirs = block.transform(batch), _sklearn(block, batch)
        theirs.sort_indices()
        # Same non-zero cells in the same order; values equal up to float32 rounding of the norm.
        np.testing.assert_array_equal(ours.indptr, theirs.indptr)
        np.testing.assert_array_equal(ours.indices, theirs.indices)
        np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-6, atol=0)
    assert block.transform(docs[name]).nnz > len(
        docs[name]
    )  # not vacuous: the starter texts hit the vocabulary


def test_probabilities_equal_sklearns_path(starter_model: TextClassifier, docs: dict[str, list[str]]) -> None:
    f = starter_model._featurizer
    blocks = [
        _sklearn(f.char, docs["char"]),
        _sklearn(f.word, docs["word"]),
        _sklearn(f.title, docs["title"]),
    ]
    x = np.hstack([blocks[0].toarray(), blocks[1].toarray(), TITLE_WEIGHT * blocks[2].toarray()])
    scores = x.astype(np.float64) @ starter_model._coef.T.astype(np.float64) + starter_model._intercept
    expected = _softmax(scores @ starter_model._cal_coef.T + starter_model._cal_intercept)
    np.testing.assert_allclose(starter_model.predict_proba(_texts()), expected, rtol=0, atol=1e-6)


def test_hash_table_finds_every_code_and_only_them() -> None:
    rng = np.random.default_rng(0)
    # Small codes differing in their low bits, like n-grams sharing a prefix, and wide random ones.
    codes: Codes = np.unique(
        np.concatenate([np.arange(1, 3000, dtype=np.uint64), rng.integers(1, 2**63, 20_000, dtype=np.uint64)])
    )
    rng.shuffle(codes)
    table = _Table(codes, np.arange(len(codes)), np.ones(len(codes), dtype=np.float32))
    np.testing.assert_array_equal(table.columns(codes), np.arange(len(codes)))
    others: Codes = np.setdiff1d(rng.integers(1, 2**63, 50_000, dtype=np.uint64), codes)
    others = np.concatenate([others, np.arange(3000, 6000, dtype=np.uint64)])
    assert (table.columns(others) == -1).all()
    mixed = np.concatenate([others[:100], codes[:100], others[:100]])
    np.testing.assert_array_equal(table.columns(mixed), [-1] * 100 + list(range(100)) + [-1] * 100)
    empty = _Table(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    assert (empty.columns(codes) == -1).all()


def test_normalize_equals_the_plain_whitespace_rules() -> None:
    """normalize's fast CJK-gap pattern relies on _NON_WORD leaving single spaces: same as the plain rules."""
    gap, spaces = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])"), re.compile(r"\s+")
    odd = [
        "停水\t\n 三天",
        "停水\u3000三天",
        "停 水 a 三 天",
        "停水\u2028三天",
        "停水\x85三天",
        "停水 _ 三天",
        "  停 水  ",
    ]
    for text in [*_texts(), *odd]:
        plain = spaces.sub(" ", gap.sub("", _NON_WORD.sub(" ", fold(text)))).strip()
        assert normalize(text) == plain, text
