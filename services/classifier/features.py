"""TF-IDF features as plain arrays (vocabulary + idf vector), so a model loads without unpickling."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from services.classifier.text import normalize, words

Matrix: TypeAlias = Any  # scipy.sparse.csr_matrix; scipy ships no type information
FloatArray = npt.NDArray[np.float32]

# Character n-grams carry most of the signal for Chinese and survive typos in English; word n-grams (jieba)
# add phrase-level evidence. Each block is L2-normalised separately so neither dominates by length.
CHAR_NGRAMS = (1, 3)
WORD_NGRAMS = (1, 2)
MIN_DF = 2
# A message starts with its title (the worker joins title and text; Teddy Cup rows are title + detail), and
# the title names the topic more plainly than the detail does. A third char block over the first TITLE_CHARS
# characters, at TITLE_WEIGHT, gave +0.009 raw macro-F1 in every fold of grouped 5-fold CV
# (bench/classifier_alternatives.py, BENCHMARKS.md "Classifier quality").
TITLE_CHARS = 30
TITLE_WEIGHT = 0.5


# An n-gram as one integer: its symbols' codes side by side, `bits` each. A character's symbol is its code
# point (21 bits fit them all); a word's is its number in the block's token list (0: not a token of any
# vocabulary term). 0 also separates documents, so an n-gram containing 0 is never counted, and the codes of
# different n never collide because every symbol of a counted n-gram is non-zero.
_CHAR_BITS = 21
# Ends each document of a batch of word documents. Normalised text holds no control character, so no
# vocabulary term contains it (the char block's 0 separator relies on the same).
_SEPARATOR = "\x00"
assert CHAR_NGRAMS[1] * _CHAR_BITS <= 64 and WORD_NGRAMS[1] <= 2

Ints = npt.NDArray[np.int64]
Codes = npt.NDArray[np.uint64]


def _code(symbols: list[int], bits: int) -> int:
    code = 0
    for s in symbols:
        code = (code << bits) | s
    return code


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)


class _Table:
    """The vocabulary's n-gram codes in a hash table of buckets (codes sorted by bucket, and where each bucket
    starts), so a batch's n-grams are looked up with a few whole-array steps instead of being sorted
    (np.unique) and binary searched in the sorted vocabulary. With 4-8 buckets a code, over 3/4 of the
    buckets are empty: most n-grams, which are in no vocabulary, stop at the first step.
    """

    def __init__(self, codes: Codes, columns: Ints, idf: FloatArray) -> None:
        bits = max(4, 2 + len(codes).bit_length())
        self._shift = np.uint64(64 - bits)
        bucket = self._bucket(codes)
        # Within a bucket, the most common n-grams (lowest idf) first: most lookups end at the first step.
        order = np.lexsort((idf, bucket))
        self._keys = codes[order]
        self._columns = columns[order].astype(np.int32)  # the vocabulary has < 2^31 terms
        # Counted in place in int32, not by np.bincount, whose int64 counts would add 8 bytes a bucket to
        # the peak memory of loading a large model.
        self._starts = np.zeros((1 << bits) + 1, dtype=np.int32)
        np.add.at(self._starts, bucket + 1, 1)
        np.cumsum(self._starts, out=self._starts)

    def _bucket(self, codes: Codes) -> Ints:
        # Fibonacci hashing: the top bits of code * 2^64/phi spread codes that differ only in their low bits
        # (an n-gram's last symbol). int64: numpy converts uint64 indices to intp on every indexing.
        bucket: Ints = ((codes * _FIBONACCI) >> self._shift).astype(np.int64)
        return bucket

    def columns(self, codes: Codes) -> Ints:
        """Each code's column, -1 for codes not in the vocabulary."""
        out = np.full(len(codes), -1, dtype=np.int64)
        bucket = self._bucket(codes)
        pos = self._starts[bucket]
        end = self._starts[bucket + 1]
        at = np.flatnonzero(pos < end)
        pos, end, codes = pos[at], end[at], codes[at]
        while len(at):
            hit = self._keys[pos] == codes
            out[at[hit]] = self._columns[pos[hit]]
            pos += 1
            on = ~hit & (pos < end)
            at, pos, end, codes = at[on], pos[on], end[on], codes[on]
        return out


@dataclass(frozen=True)
class Block:
    """One TF-IDF block with sublinear tf, frozen after training.

    `transform` gives the same matrix as sklearn's TfidfVectorizer with this vocabulary and idf, without
    sklearn's Python loop over every n-gram: a whole batch becomes one array of symbol codes, its n-grams
    integer codes, looked up all at once: single symbols in an array indexed by symbol, longer n-grams in a
    hash table of the vocabulary's codes (`_Table`).
    """

    kind: str  # "char" or "word"
    vocabulary: list[str]
    idf: FloatArray
    _tokens: dict[str, int] = field(init=False, repr=False, compare=False)
    _bits: int = field(init=False, repr=False, compare=False)
    _unigrams: Ints = field(init=False, repr=False, compare=False)
    _table: _Table = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "char":
            tokens: dict[str, int] = {}
            bits = _CHAR_BITS
            symbols = [[ord(ch) for ch in term] for term in self.vocabulary]
        else:
            parts = [term.split(" ") for term in self.vocabulary]
            tokens = {t: i for i, t in enumerate(sorted({t for p in parts for t in p}), 1)}
            bits = max(1, len(tokens).bit_length())
            symbols = [[tokens[t] for t in p] for p in parts]
            del parts
            tokens[_SEPARATOR] = len(tokens) + 1  # the last number: see _symbols
        codes = np.fromiter((_code(s, bits) for s in symbols), dtype=np.uint64, count=len(symbols))
        single = np.fromiter((len(s) == 1 for s in symbols), dtype=bool, count=len(symbols))
        # Freed before the tables are built: for a large vocabulary the lists take more memory than the
        # tables, and both at once set the process's peak resident memory.
        del symbols
        columns = np.arange(len(codes), dtype=np.int64)
        # A one-symbol term's column by its symbol (code point or token number): one read per symbol, no hash.
        # -1 elsewhere, and in the last entry, which stands for every larger symbol.
        unigrams = np.full(int(codes[single].max(initial=0)) + 2, -1, dtype=np.int64)
        unigrams[codes[single]] = columns[single]
        table = _Table(codes[~single], columns[~single], self.idf[~single])
        for name, value in (("_tokens", tokens), ("_bits", bits), ("_unigrams", unigrams), ("_table", table)):
            object.__setattr__(self, name, value)

    def _symbols(self, docs: list[str]) -> tuple[Codes, Ints]:
        """The batch as one array of symbol codes, each document followed by a 0; and each one's length."""
        if self.kind == "char":
            points = np.frombuffer("\x00".join([*docs, ""]).encode("utf-32-le"), dtype=np.uint32)
            return points.astype(np.uint64), np.array([len(d) for d in docs], dtype=np.int64)
        # One split and one pass of lookups for the whole batch: the documents joined by a separator token,
        # which `_tokens` numbers after every real token; its places give the lengths, then it becomes 0.
        text = f" {_SEPARATOR} ".join([*docs, ""])
        # int64 then viewed: numpy converts Python ints to uint64 15% slower.
        ids = np.fromiter(map(self._tokens.get, text.split(), repeat(0)), dtype=np.int64)
        ends = np.flatnonzero(ids == len(self._tokens))
        ids[ends] = 0
        lengths: Ints = np.diff(ends, prepend=-1) - 1
        return ids.view(np.uint64), lengths

    def _counts(self, docs: list[str]) -> tuple[Ints, Ints]:
        """(row, column) of every vocabulary n-gram occurrence in the batch."""
        symbols, lengths = self._symbols(docs)
        doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths + 1)
        bits = np.uint64(self._bits)
        rows: list[Ints] = [np.zeros(0, dtype=np.int64)]
        cols: list[Ints] = [np.zeros(0, dtype=np.int64)]
        lo, hi = CHAR_NGRAMS if self.kind == "char" else WORD_NGRAMS
        for n in range(lo, hi + 1):
            m = len(symbols) - n + 1
            if n == 1:
                col = self._unigrams[np.minimum(symbols, len(self._unigrams) - 1)]
                hit = col >= 0
                cols.append(col[hit])
                rows.append(doc_of[hit])
                continue
            if m <= 0:
                continue
            code = symbols[:m].copy()
            ok = symbols[:m] != 0
            for k in range(1, n):
                code = (code << bits) | symbols[k : k + m]
                ok &= symbols[k : k + m] != 0
            col = self._table.columns(code[ok])
            hit = col >= 0
            cols.append(col[hit])
            rows.append(doc_of[:m][ok][hit])
        return np.concatenate(rows), np.concatenate(cols)

    def transform(self, docs: list[str]) -> Matrix:
        rows, cols = self._counts(docs)
        # COO -> CSR sums the repeated (row, column) pairs: the term counts.
        tf = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(docs), len(self.vocabulary))
        )
        tf.data = (1.0 + np.log(tf.data)) * self.idf[tf.indices]
        # What sklearn's normalize(tf) runs on a float32 CSR matrix, without its parameter validation, which
        # read the function's signature on every call (3% of the classifier at saturation).
        inplace_csr_row_normalize_l2(tf)
        matrix: Matrix = tf
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


def _title(normalized: str) -> str:
    return normalized[:TITLE_CHARS]


class Featurizer:
    def __init__(self, char: Block, word: Block, title: Block) -> None:
        self.char = char
        self.word = word
        self.title = title

    @classmethod
    def fit(cls, texts: list[str]) -> tuple[Featurizer, Matrix]:
        """Fit on `texts` and return the featurizer with the training matrix (same maths as `transform`)."""
        normalized = [normalize(t) for t in texts]
        char, char_x = _fit_block("char", normalized)
        word, word_x = _fit_block("word", [words(t) for t in normalized])
        title, title_x = _fit_block("char", [_title(t) for t in normalized])
        return cls(char, word, title), sparse.hstack([char_x, word_x, TITLE_WEIGHT * title_x], format="csr")

    def transform(self, texts: list[str]) -> Matrix:
        normalized = [normalize(t) for t in texts]
        char_x = self.char.transform(normalized)
        word_x = self.word.transform([words(t) for t in normalized])
        title_x = self.title.transform([_title(t) for t in normalized])
        matrix: Matrix = sparse.hstack([char_x, word_x, TITLE_WEIGHT * title_x], format="csr")
        return matrix

    @property
    def n_features(self) -> int:
        return len(self.char.vocabulary) + len(self.word.vocabulary) + len(self.title.vocabulary)
