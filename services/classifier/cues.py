"""Finding the urgency cues of data/urgency.yaml in a text: one Aho-Corasick pass over its normalised form.

People say "the gas smells strong", "燃气管道好像泄漏了", "煤气味很浓": no fixed phrase covers them, but an
*object* (燃气, gas) and a *state* (泄漏, smell) a few characters apart do. So the lexicon holds objects and
states per hazard, matched as combinations within a window, besides plain phrases ("着火", "trapped").
Every term of every list is one key of a single automaton, so a text is scanned once whatever the lexicon's
size. Chinese terms match anywhere (no word boundaries in Chinese); English terms match whole words, and a
term ending in `*` also takes an inflection ("leak*": leaks, leaked, leaking).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import yaml
from ahocorasick_rs import AhoCorasick, Implementation, MatchKind

from services.classifier.text import fold

CUE_FILE = Path(__file__).resolve().parent / "data" / "urgency.yaml"
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_WHITESPACE = re.compile(r"\s")
# Variants of the same sign, so one spelling of the lexicon covers them (after NFKC).
_VARIANT = {"’": "'", "‘": "'", "｡": "。", "､": "、", "\u00a0": " "}
_VARIANTS = re.compile(f"[{''.join(_VARIANT)}]")
_SUFFIXES = ("s", "es", "ed", "d", "ing", "y", "ies")
CLAUSE_END = re.compile(r"[,.;:!?，。；：！？、\n]")
SENTENCE_END = re.compile(r"[.;!?。；！？\n]")

# Pairs of a traditional character and its simplified form, for the lexicon's words and common report
# phrasing: a small table covers what the cues need at almost no cost, where a full converter (OpenCC) would
# be a dependency and a dictionary pass over every message.
_PAIRS = (
    "洩泄氣气電电線线斷断燒烧煙烟霧雾災灾場场區区層层樓楼門门裡里體体學学撲扑覺觉聞闻濃浓嗆呛傷伤觸触墜坠險险還还經经過过預预處处現现著着燈灯壓压發发動动這这們们會会說说開开關关時时個个車车兒儿廚厨閥阀陽阳臺台"
    "塊块牆墙橋桥無无並并週周擔担備备檢检練练專专導导熱热頭头號号嚴严趕赶緊紧應应該该麼么讓让請请馬马嗎吗難难異异劑剂藥药廠厂倉仓庫库脫脱閃闪響响聲声鐵铁鋼钢礦矿漲涨積积澇涝窪洼橫横傾倾鬆松爛烂滅灭進进噴喷"
    "縫缝沒没員员護护衛卫職职隊队滿满騰腾狀状況况從从後后夠够邊边樣样見见聽听戶户業业務务術术環环紅红綠绿鍋锅爐炉氫氢腦脑癱瘫暈晕厲厉嚇吓慘惨歲岁孫孙媽妈爺爷親亲鄰邻窩窝樹树葉叶陰阴蓋盖糞粪"
)
_TO_SIMPLIFIED = {ord(_PAIRS[i]): _PAIRS[i + 1] for i in range(0, len(_PAIRS), 2)}
_HAS_TRADITIONAL = re.compile(f"[{_PAIRS[::2]}]")


@lru_cache(maxsize=1024)
def cue_text(text: str) -> str:
    """How cues see a text: NFKC and lower case (`fold`), simplified characters, no spaces between Chinese
    characters ("煤 气 泄 漏" is 煤气泄漏), one space between words; punctuation stays (it bounds clauses)."""
    text = _VARIANTS.sub(lambda m: _VARIANT[m.group()], fold(text))
    if _HAS_TRADITIONAL.search(text):
        text = text.translate(_TO_SIMPLIFIED)
    if not _WHITESPACE.search(text):
        return text
    return _SPACES.sub(" ", _CJK_GAP.sub("", text))


def is_latin(term: str) -> bool:
    return not any("\u3400" <= ch <= "\u9fff" for ch in term)


class Hit(NamedTuple):  # a tuple, not a dataclass: a long message has dozens, built in the worker's hot path
    start: int
    end: int
    term: str  # the lexicon's term ("leak")
    word: str  # what it matched in the text ("leaking")
    roles: frozenset[str]  # e.g. "phrase:emergency", "object:gas", "state:gas", "negation", "past"
    latin: bool


@dataclass
class _Entry:
    term: str
    stem: bool
    roles: set[str] = field(default_factory=set)


def _word_end(text: str, end: int, stem: bool) -> int | None:
    """Where the English word matched up to `end` ends, or None if the match ends inside a longer word."""
    if end == len(text) or not text[end].isalnum():
        return end
    if stem:
        for suffix in _SUFFIXES:
            after = end + len(suffix)
            if text.startswith(suffix, end) and (after == len(text) or not text[after].isalnum()):
                return after
    return None


class _Term(NamedTuple):
    term: str
    stem: bool
    roles: frozenset[str]
    latin: bool
    trigger: bool  # a phrase or a state: what can make a cue (objects, negations... only qualify one)


class Lexicon:
    """Every term of the cue file in one automaton; `scan` gives its hits in a normalised text.

    The automaton is a DFA (ahocorasick-rs): one pass costs about 8 µs on a 430-character letter, where a
    trie that looks up each character among the root's hundreds of children cost 25-40 µs. Only phrases and
    states can make a cue: about half of real messages hold none, and nothing can fire in them; in the others
    only the hits in the sentences holding one are kept (objects, negations, times... act within a sentence).
    """

    def __init__(self, terms: Iterable[tuple[str, str]]) -> None:
        entries: dict[str, _Entry] = {}
        for raw, role in terms:
            stem = raw.endswith("*")
            term = cue_text(raw.rstrip("*")).strip()
            if not term:
                continue
            entry = entries.setdefault(term, _Entry(term, stem))
            entry.stem = entry.stem or stem
            entry.roles.add(role)
        self._terms = [
            _Term(
                term,
                entry.stem,
                frozenset(entry.roles),
                is_latin(term),
                # a nuisance word too: the reviewer's gate must see it in a sentence without a state
                any(r.startswith(("phrase:", "state:")) or r == "nuisance" for r in entry.roles),
            )
            for term, entry in entries.items()
        ]
        self._matcher = AhoCorasick(
            [t.term for t in self._terms], matchkind=MatchKind.Standard, implementation=Implementation.DFA
        )
        self.size = len(self._terms)

    def scan(self, text: str) -> list[Hit]:
        """Every hit in the sentences that hold a phrase or a state, by end then start."""
        found = sorted(
            self._matcher.find_matches_as_indexes(text, overlapping=True), key=lambda m: (m[2], m[1])
        )
        terms = self._terms
        spans = _sentences(
            text,
            [
                end
                for i, start, end in found
                if terms[i].trigger and _word(text, terms[i], start, end) is not None
            ],
        )
        hits: list[Hit] = []
        span = 0
        for i, start, end in found:
            while span < len(spans) and spans[span][1] < end:
                span += 1
            if span == len(spans):
                break
            if start < spans[span][0]:
                continue
            term = terms[i]
            word_end = _word(text, term, start, end)
            if word_end is not None:
                hits.append(Hit(start, word_end, term.term, text[start:word_end], term.roles, term.latin))
        return hits


def _word(text: str, term: _Term, start: int, end: int) -> int | None:
    """Where a match ends as a cue: a Chinese term where it matched; an English one at the end of its word,
    or None when it starts or ends inside a longer word."""
    if not term.latin:
        return end
    if start > 0 and text[start - 1].isalnum():
        return None
    return _word_end(text, end, term.stem)


def _sentences(text: str, ends: list[int]) -> list[tuple[int, int]]:
    """The spans of the sentences holding the given end positions, in order, each once."""
    spans: list[tuple[int, int]] = []
    for end in ends:
        if spans and end <= spans[-1][1]:
            continue
        first = spans[-1][1] if spans else 0
        first = max((m.end() for m in SENTENCE_END.finditer(text, first, end - 1)), default=first)
        last = SENTENCE_END.search(text, end)
        spans.append((first, last.start() if last else len(text)))
    return spans


def _strings(section: object) -> list[str]:
    """The zh and en lists of a section ({zh: [...], en: [...]}), or a plain list."""
    if isinstance(section, list):
        return [str(s) for s in section]
    if isinstance(section, dict):
        return [str(s) for lang in ("zh", "en") for s in (section.get(lang) or [])]
    return []


@dataclass(frozen=True)
class Combo:
    name: str
    window: int  # largest gap in characters between object and state (three times that for English words)


@dataclass(frozen=True)
class CueFile:
    lexicon: Lexicon
    combos: dict[str, Combo]
    levels: tuple[str, ...]  # levels with phrases, in the order they are checked
    categories: dict[str, str]


# Roles of the words that take a cue back; see the cue file for what each means.
SUPPRESSORS = ("negation", "hypothetical", "resolved", "prevention", "figurative", "past")


@lru_cache(maxsize=4)
def load(path: Path = CUE_FILE) -> CueFile:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    terms: list[tuple[str, str]] = []
    levels = data["levels"]
    for level, section in levels.items():
        terms.extend((t, f"phrase:{level}") for t in _strings(section))
    combos = {}
    for name, combo in (data.get("combos") or {}).items():
        combos[name] = Combo(name, int(combo.get("window", 10)))
        terms.extend((t, f"object:{name}") for t in _strings(combo["objects"]))
        terms.extend((t, f"state:{name}") for t in _strings(combo["states"]))
    for role in ("ignore", "present", "unasked", "odour", "nuisance", "near_miss", *SUPPRESSORS):
        terms.extend((t, role) for t in _strings(data.get(role)))
    for name, section in (data.get("explained") or {}).items():
        terms.extend((t, f"explained:{name}") for t in _strings(section))
    categories = {str(k): str(v) for k, v in (data.get("categories") or {}).items()}
    return CueFile(Lexicon(terms), combos, tuple(levels), categories)
