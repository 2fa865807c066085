"""Groups of identical or near-identical texts, so they never straddle a train/test or CV split.

The Teddy Cup data holds exact duplicates and many resubmissions with a word or two changed; letting one copy
train and another test inflates every score.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import TfidfVectorizer

from services.classifier.text import normalize

NEAR_DUPLICATE_COSINE = 0.8


def duplicate_groups(texts: list[str], threshold: float = NEAR_DUPLICATE_COSINE) -> npt.NDArray[np.int32]:
    """A group id per text; texts whose character-trigram TF-IDF cosine is >= threshold share a group."""
    if not texts:
        return np.zeros(0, dtype=np.int32)
    vec = TfidfVectorizer(
        analyzer="char", ngram_range=(3, 3), lowercase=False, sublinear_tf=True, dtype=np.float32
    )
    normalized = [normalize(t) for t in texts]
    try:
        x = vec.fit_transform(normalized)
    except ValueError:  # every text shorter than three characters
        x = None
    if x is None:
        _, exact = np.unique(np.array(normalized, dtype=object), return_inverse=True)
        return exact.astype(np.int32)
    similar = x @ x.T
    similar.data[similar.data < threshold] = 0
    similar.eliminate_zeros()
    _, group = connected_components(similar, directed=False)
    # Texts with no trigram (one or two characters) have empty rows; tie identical ones together explicitly.
    empty = np.flatnonzero(np.diff(x.indptr) == 0)
    first: dict[str, int] = {}
    for i in empty:
        group[i] = group[first.setdefault(normalized[i], int(i))]
    result: npt.NDArray[np.int32] = group.astype(np.int32)
    return result
