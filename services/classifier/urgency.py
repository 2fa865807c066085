"""Rule-based urgency of a complaint, after the 12345 rules; every decision names the cue that caused it.

Cue lists live in data/urgency.yaml so operators can read and extend them. Chinese cues match as substrings
(no word boundaries in Chinese); English cues match whole words. A cue preceded by a negation in the same
clause ("没有煤气泄漏", "there is no gas leak") does not count.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

import yaml

Level = Literal["emergency", "utilities", "general", "complex"]
CUE_FILE = Path(__file__).resolve().parent / "data" / "urgency.yaml"
_ORDER: tuple[Level, ...] = ("emergency", "utilities", "complex")
_CLAUSE_END = re.compile(r"[,.;!?，。；！？、\n]")
# How far back (in characters, within the clause) a negation still applies to a cue.
_NEGATION_REACH = 12


@dataclass(frozen=True)
class Urgency:
    level: Level
    cue: str | None  # e.g. "keyword:煤气泄漏", "category:utilities"; None for "general"


@dataclass(frozen=True)
class _Rules:
    cues: dict[Level, list[tuple[str, re.Pattern[str]]]]
    ignore: re.Pattern[str] | None
    negation: re.Pattern[str]
    categories: dict[str, Level]


def _is_cjk(phrase: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in phrase)


def _pattern(phrase: str) -> str:
    escaped = re.escape(phrase.lower())
    return escaped if _is_cjk(phrase) else rf"(?<![\w-]){escaped}(?![\w-])"


def _phrases(section: object) -> list[str]:
    if not isinstance(section, dict):
        return []
    return [str(p) for lang in ("zh", "en") for p in (section.get(lang) or [])]


@lru_cache(maxsize=4)
def _rules(path: Path = CUE_FILE) -> _Rules:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cues: dict[Level, list[tuple[str, re.Pattern[str]]]] = {}
    for level in _ORDER:
        # Longest first, so "燃气泄漏" is reported rather than a shorter cue inside it.
        phrases = sorted(_phrases(data["levels"].get(level)), key=len, reverse=True)
        cues[level] = [(p, re.compile(_pattern(p))) for p in phrases]
    ignore = _phrases(data.get("ignore"))
    negations = sorted(_phrases(data.get("negations")), key=len, reverse=True)
    categories = {str(k): cast(Level, v) for k, v in (data.get("categories") or {}).items() if v in _ORDER}
    return _Rules(
        cues=cues,
        ignore=re.compile("|".join(_pattern(p) for p in sorted(ignore, key=len, reverse=True)))
        if ignore
        else None,
        negation=re.compile("|".join(_pattern(p) for p in negations)),
        categories=categories,
    )


def _negated(text: str, start: int, negation: re.Pattern[str]) -> bool:
    before = text[max(0, start - _NEGATION_REACH) : start]
    clause = _CLAUSE_END.split(before)[-1]
    return negation.search(clause) is not None


def urgency_of(text: str, category: str | None) -> Urgency:
    rules = _rules()
    clean = unicodedata.normalize("NFKC", text or "").lower()
    if rules.ignore is not None:
        # Blank out rather than delete, so positions and clause boundaries stay where they were.
        clean = rules.ignore.sub(lambda m: " " * len(m.group()), clean)
    for level in _ORDER:
        for phrase, pattern in rules.cues[level]:
            if any(not _negated(clean, m.start(), rules.negation) for m in pattern.finditer(clean)):
                return Urgency(level, f"keyword:{phrase}")
    if category is not None and category in rules.categories:
        return Urgency(rules.categories[category], f"category:{category}")
    return Urgency("general", None)
