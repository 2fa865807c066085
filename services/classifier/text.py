"""Text normalisation shared by training and inference.

Training data may be jieba-segmented with stop words removed (the Teddy Cup set) while production sees raw
text, so both go through the same normalisation: NFKC, lower case, punctuation to spaces, and no spaces
between CJK characters (which turns segmented text back into a contiguous string like raw text).
"""

from __future__ import annotations

import re
import unicodedata

import rjieba

from shared.events import Language

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NON_WORD = re.compile(r"[\W_]+")
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_HAS_CJK = re.compile(rf"[{_CJK}]")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NON_WORD.sub(" ", text)
    text = _CJK_GAP.sub("", text)
    return _SPACES.sub(" ", text).strip()


def language_of(text: str) -> Language:
    """zh when the text holds any CJK character, else en: the two languages the taxonomy and cues cover."""
    return "zh" if _HAS_CJK.search(text) else "en"


def words(normalized: str) -> str:
    """Space-joined word tokens of already normalised text (jieba for Chinese, whitespace for the rest).

    rjieba is jieba's algorithm and dictionary in Rust: on the 2,743 raw Teddy Cup messages it cuts all
    7,595 CJK chunks exactly as `jieba.cut(HMM=False)` does, about 12 times faster.
    """
    out: list[str] = []
    for chunk in normalized.split(" "):
        if _HAS_CJK.search(chunk):
            # No HMM: unknown words fall apart into characters, which the char n-grams already cover,
            # and skipping the HMM pass makes segmentation faster.
            out.extend(rjieba.cut(chunk, False))
        elif chunk:
            out.append(chunk)
    return " ".join(out)
