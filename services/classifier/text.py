"""Text normalisation shared by training and inference.

Training data may be jieba-segmented with stop words removed (the Teddy Cup set) while production sees raw
text, so both go through the same normalisation: NFKC, lower case, punctuation to spaces, and no spaces
between CJK characters (which turns segmented text back into a contiguous string like raw text).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata

import jieba

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NON_WORD = re.compile(r"[\W_]+")
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_HAS_CJK = re.compile(rf"[{_CJK}]")

_jieba_lock = threading.Lock()
_jieba_ready = False


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NON_WORD.sub(" ", text)
    text = _CJK_GAP.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _ensure_jieba() -> None:
    # jieba builds its prefix dictionary lazily (about a second) and logs to stderr when it does; do it once,
    # quietly, and under a lock because the first cut from two threads would build it twice.
    global _jieba_ready
    if _jieba_ready:
        return
    with _jieba_lock:
        if not _jieba_ready:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba_ready = True


def words(normalized: str) -> str:
    """Space-joined word tokens of already normalised text (jieba for Chinese, whitespace for the rest)."""
    _ensure_jieba()
    out: list[str] = []
    for chunk in normalized.split(" "):
        if _HAS_CJK.search(chunk):
            # HMM=False: unknown words fall apart into characters, which the char n-grams already cover,
            # and skipping the HMM pass makes segmentation about a third faster.
            out.extend(jieba.cut(chunk, HMM=False))
        elif chunk:
            out.append(chunk)
    return " ".join(out)
