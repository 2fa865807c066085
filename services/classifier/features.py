"""TF-IDF features as plain arrays (vocabulary + idf vector), so a model loads without unpickling."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from services.classifier.text import normalize, words

Matrix: TypeAlias = Any  # scipy.sparse.csr_matrix; scipy ships no type information
FloatArray = npt.NDArray[np.float32]

# Character n-grams carry most of the signal for Chinese and survive typos in English; word n-grams (jieba)
# add phrase-level evidence. Each block is L2-normalised separately so neither dominates by length.
CHAR_NGRAMS = (1, 3)
WORD_NGRAMS = (1, 2)
MIN_DF = 2


# A character n-gram as one integer: its code points, 21 bits each (every code point fits), so n <= 3 fits
# in 64 bits. Normalised text has no NUL, so the codes of different n never collide.
_BITS = 21
assert CHAR_NGRAMS[1] * _BITS <= 64


def _gram_code(term: str) -> int:
    code = 0
    for ch in term:
        code = (code << _BITS) | ord(ch)
    return code


def _word_grams(doc: str) -> list[str]:
    # sklearn's word n-grams with token_pattern \S+: tokens, then space-joined runs of them.
    tokens = doc.split()
    lo, hi = WORD_NGRAMS
    grams = tokens[:] if lo == 1 else []
    for n in range(max(lo, 2), hi + 1):
        grams.extend(map(" ".join, zip(*(tokens[k:] for k in range(n)), strict=False)))
    return grams


Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Block:
    """One TF-IDF block with sublinear tf, frozen after training.

    `transform` gives the same matrix as sklearn's TfidfVectorizer with this vocabulary and idf, counted
    without sklearn's per-n-gram Python loop: character n-grams as integer codes looked up with numpy
    (`searchsorted` over the sorted vocabulary codes, a whole batch at once), word n-grams through `map`.
    """

    kind: str  # "char" or "word"
    vocabulary: list[str]
    idf: FloatArray
    _lookup: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "char":
            codes = np.fromiter(map(_gram_code, self.vocabulary), dtype=np.uint64, count=len(self.vocabulary))
            order = np.argsort(codes, kind="stable")
            object.__setattr__(self, "_lookup", (codes[order], order))
        else:
            object.__setattr__(self, "_lookup", {t: i for i, t in enumerate(self.vocabulary)})

    def _char_counts(self, docs: list[str]) -> tuple[Ints, Ints]:
        sorted_codes, order = self._lookup
        # All documents as one array of code points, NUL between them; an n-gram spanning a NUL is dropped.
        points = np.frombuffer("\x00".join(docs).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        doc_of = np.cumsum(points == 0)
        rows: list[Ints] = []
        cols: list[Ints] = []
        lo, hi = CHAR_NGRAMS
        for n in range(lo, hi + 1):
            m = len(points) - n + 1
            if m <= 0:
                continue
            code = points[:m].copy()
            ok = points[:m] != 0
            for k in range(1, n):
                code = (code << np.uint64(_BITS)) | points[k : k + m]
                ok &= points[k : k + m] != 0
            code = code[ok]
            pos = np.minimum(np.searchsorted(sorted_codes, code), len(sorted_codes) - 1)
            hit = sorted_codes[pos] == code
            cols.append(order[pos[hit]])
            rows.append(doc_of[:m][ok][hit])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def _word_counts(self, docs: list[str]) -> tuple[Ints, Ints]:
        lookup = self._lookup.get
        ids: list[int] = []
        lengths = []
        for doc in docs:
            before = len(ids)
            ids.extend(map(lookup, _word_grams(doc), repeat(-1)))
            lengths.append(len(ids) - before)
        cols = np.fromiter(ids, dtype=np.int64, count=len(ids))
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        known = cols >= 0
        return rows[known], cols[known]

    def transform(self, docs: list[str]) -> Matrix:
        rows, cols = self._char_counts(docs) if self.kind == "char" else self._word_counts(docs)
        # COO -> CSR sums the repeated (row, column) pairs: the term counts.
        tf = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(docs), len(self.vocabulary))
        )
        tf.data = (1.0 + np.log(tf.data)) * self.idf[tf.indices]
        matrix: Matrix = l2_normalize(tf, copy=False)
        return matrix


def _fit_block(kind: str, docs: list[str]) -> tuple[Block, Matrix]:
    if kind == "char":
        vec = TfidfVectorizer(
            analyzer="char",
            ngram_range=CHAR_NGRAMS,
            lowercase=False,
            min_df=MIN_DF,
            sublinear_tf=True,
            dtype=np.float32,
        )
    else:
        vec = TfidfVectorizer(
            token_pattern=r"\S+",
            ngram_range=WORD_NGRAMS,
            lowercase=False,
            min_df=MIN_DF,
            sublinear_tf=True,
            dtype=np.float32,
        )
    try:
        matrix = vec.fit_transform(docs)
    except ValueError:
        # Tiny corpora can leave no term with df >= MIN_DF; fall back to every term rather than fail.
        vec.set_params(min_df=1)
        matrix = vec.fit_transform(docs)
    vocabulary = [""] * len(vec.vocabulary_)
    for term, index in vec.vocabulary_.items():
        vocabulary[index] = term
    return Block(kind, vocabulary, vec.idf_.astype(np.float32)), sparse.csr_matrix(matrix)


class Featurizer:
    def __init__(self, char: Block, word: Block) -> None:
        self.char = char
        self.word = word

    @classmethod
    def fit(cls, texts: list[str]) -> tuple[Featurizer, Matrix]:
        """Fit on `texts` and return the featurizer with the training matrix (same maths as `transform`)."""
        normalized = [normalize(t) for t in texts]
        char, char_x = _fit_block("char", normalized)
        word, word_x = _fit_block("word", [words(t) for t in normalized])
        return cls(char, word), sparse.hstack([char_x, word_x], format="csr")

    def transform(self, texts: list[str]) -> Matrix:
        normalized = [normalize(t) for t in texts]
        char_x = self.char.transform(normalized)
        word_x = self.word.transform([words(t) for t in normalized])
        matrix: Matrix = sparse.hstack([char_x, word_x], format="csr")
        return matrix

    @property
    def n_features(self) -> int:
        return len(self.char.vocabulary) + len(self.word.vocabulary)
