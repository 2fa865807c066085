"""TF-IDF features as plain arrays (vocabulary + idf vector), so a model loads without unpickling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from services.classifier.text import normalize, words

Matrix: TypeAlias = Any  # scipy.sparse.csr_matrix; scipy ships no type information
FloatArray = npt.NDArray[np.float32]

# Character n-grams carry most of the signal for Chinese and survive typos in English; word n-grams (jieba)
# add phrase-level evidence. Each block is L2-normalised separately so neither dominates by length.
CHAR_NGRAMS = (1, 3)
WORD_NGRAMS = (1, 2)
MIN_DF = 2


@dataclass(frozen=True)
class Block:
    """One TF-IDF block with sublinear tf, frozen after training."""

    kind: str  # "char" or "word"
    vocabulary: list[str]
    idf: FloatArray

    def _counter(self) -> CountVectorizer:
        if self.kind == "char":
            return CountVectorizer(
                analyzer="char",
                ngram_range=CHAR_NGRAMS,
                lowercase=False,
                vocabulary={t: i for i, t in enumerate(self.vocabulary)},
                dtype=np.float32,
            )
        return CountVectorizer(
            token_pattern=r"\S+",
            ngram_range=WORD_NGRAMS,
            lowercase=False,
            vocabulary={t: i for i, t in enumerate(self.vocabulary)},
            dtype=np.float32,
        )

    def transform(self, docs: list[str], counter: CountVectorizer) -> Matrix:
        tf = counter.transform(docs).tocsr()
        tf.data = 1.0 + np.log(tf.data)
        weighted = tf @ sparse.diags(self.idf)
        matrix: Matrix = sparse.csr_matrix(l2_normalize(weighted, copy=False))
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
        self._char_counter = char._counter()
        self._word_counter = word._counter()

    @classmethod
    def fit(cls, texts: list[str]) -> tuple[Featurizer, Matrix]:
        """Fit on `texts` and return the featurizer with the training matrix (same maths as `transform`)."""
        normalized = [normalize(t) for t in texts]
        char, char_x = _fit_block("char", normalized)
        word, word_x = _fit_block("word", [words(t) for t in normalized])
        return cls(char, word), sparse.hstack([char_x, word_x], format="csr")

    def transform(self, texts: list[str]) -> Matrix:
        normalized = [normalize(t) for t in texts]
        char_x = self.char.transform(normalized, self._char_counter)
        word_x = self.word.transform([words(t) for t in normalized], self._word_counter)
        matrix: Matrix = sparse.hstack([char_x, word_x], format="csr")
        return matrix

    @property
    def n_features(self) -> int:
        return len(self.char.vocabulary) + len(self.word.vocabulary)
