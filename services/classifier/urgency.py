"""The urgency of a complaint, after the 12345 rules; every decision names what caused it.

Emergency first, from three signals in order:
1. a cue of data/urgency.yaml: a phrase ("着火", "trapped") or an object and a state of one hazard close
   together ("燃气" … "泄漏", "gas" … "smell"), in the text as `cues.cue_text` normalises it;
2. unless such a cue was found and taken back (see below), the urgency model (`urgency_model`), asked only
   about texts that mention some hazard word, decides from its probability;
3. otherwise the phrases of the lower levels (utilities, complex) and the category's floor.

A cue is taken back by a negation before it in its clause ("煤气没有泄漏", "no one is trapped"), a
hypothetical in its clause ("万一着火怎么办", "what if there is a gas leak"), 过 after one of its Chinese
terms ("着过火"), or, anywhere in its sentence, a denial of its hazard ("闻到煤气味，测过了，没有泄漏"),
a repair ("已经修好", "dealt with"), a prevention topic ("消防演练", "how to prevent"), a joke ("哈哈",
"lol") or a past time ("上周", "last year") unless the cue's own clauses say it goes on ("现在又", "still").

`Urgency.cue` always says why: "combo:燃气+泄漏", "keyword:着火", "model:0.93", "keyword:停水",
"category:utilities", and for "general" what was taken back ("negation:combo:煤气+泄漏"), the model's
probability when it was asked ("model:0.12"), or "none".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

from services.classifier.cues import CLAUSE_END, SENTENCE_END, SUPPRESSORS, CueFile, Hit, cue_text, load
from services.classifier.urgency_model import DEFAULT_MODEL, UrgencyModel

Level = Literal["emergency", "utilities", "general", "complex"]
_LOWER: tuple[Level, ...] = ("utilities", "complex")
# How far back (in characters, within the clause) a negation or a hypothetical still applies to a cue.
_NEGATION_REACH = 12
# An English word says about what one Chinese character does in three to four letters and a space: windows
# and reaches stretch for English terms.
_LATIN_STRETCH = 4
# The model is asked about at most this many sentences of a text, none longer than this: it learnt from
# short reports (median 17 characters), and scoring costs per character in the worker's hot path.
_MODEL_SENTENCES = 4
_MODEL_LONGEST = 100

Scorer = Callable[[str], float]
# The roles of words that cast doubt on an emergency anywhere in a text (Detector.doubts); a word of several
# roles is named by the first (差点 is a near miss before it is a negation).
_DOUBTS = ("near_miss", *SUPPRESSORS)


@dataclass(frozen=True)
class Urgency:
    level: Level
    cue: str


@dataclass(frozen=True)
class _Candidate:
    cue: str
    terms: tuple[Hit, ...]  # in text order
    hazards: frozenset[str]  # the combos it belongs to (a phrase such as 浓烟 is also an object of "fire")

    @property
    def start(self) -> int:
        return self.terms[0].start

    @property
    def end(self) -> int:
        return self.terms[-1].end


Index = dict[str, list[Hit]]  # role -> its hits in text order, built once per text


def _index(hits: list[Hit]) -> Index:
    """Hits by role, without those inside an ignored phrase ("fire exit" is no fire, 不停 no negation)."""
    covered: dict[int, int] = {}  # position -> the furthest end of an ignored phrase over it
    for i in hits:
        if "ignore" in i.roles:
            for position in range(i.start, i.end):
                covered[position] = max(covered.get(position, 0), i.end)
    by_role: Index = {}
    for h in hits:
        if covered.get(h.start, -1) >= h.end and "ignore" not in h.roles:
            continue
        for role in h.roles:
            by_role.setdefault(role, []).append(h)
    return by_role


def _model_sentences(text: str, by_role: Index, hazards: list[str]) -> list[str]:
    """What the model is asked about: the short sentences holding a hazard's state word ("泄漏", "sparking"),
    the first few of them (a long letter costs no more than a short report); not for the cue file's
    `unasked` states alone (a smell, 着), which still make cues with an object ("gas" + "smell")."""
    spans = sorted(
        {
            _sentence(text, h.start, h.end)
            for name in hazards
            for h in by_role.get(f"state:{name}", ())
            if "unasked" not in h.roles
        }
    )
    return [text[start:end] for start, end in spans if end - start <= _MODEL_LONGEST][:_MODEL_SENTENCES]


def _combos(cues: CueFile, by_role: Index) -> list[_Candidate]:
    found = []
    for name, combo in cues.combos.items():
        objects, states = by_role.get(f"object:{name}"), by_role.get(f"state:{name}")
        if not objects or not states:
            continue
        for state in states:
            for obj in objects:
                if obj.start == state.start and obj.end == state.end:
                    continue
                first, last = sorted((obj, state))  # hits order by (start, end) first
                window = combo.window * (_LATIN_STRETCH if obj.latin else 1)
                if last.start - first.end <= window:
                    found.append(
                        _Candidate(f"combo:{obj.word}+{state.word}", (first, last), frozenset([name]))
                    )
    return sorted(found, key=lambda c: (c.end - c.start, c.start))


def _phrases(by_role: Index, level: str) -> list[_Candidate]:
    return [
        _Candidate(f"keyword:{h.word}", (h,), _hazards_over(by_role, h))
        for h in by_role.get(f"phrase:{level}", ())
    ]


def _hazards_over(by_role: Index, phrase: Hit) -> frozenset[str]:
    """The hazards whose objects or states overlap a phrase ("collapsed" is also a state of "collapse"), so
    that hazard's harmless sources take the phrase back too ("collapsed garage ... demolition debris")."""
    return frozenset(
        role.split(":")[1]
        for role, hits in by_role.items()
        if role.startswith(("object:", "state:"))
        and any(h.start < phrase.end and phrase.start < h.end for h in hits)
    )


def _clause_bounded(text: str, before: Hit, candidate: _Candidate) -> bool:
    """Whether `before` (a negation or hypothetical) reaches the candidate's next term in its clause."""
    following = next((t for t in candidate.terms if t.start >= before.end), None)
    if following is None or any(before.start < t.end and t.start < before.end for t in candidate.terms):
        return False
    reach = _NEGATION_REACH * (_LATIN_STRETCH if following.latin else 1)
    if following.start - before.end > reach:
        return False
    return CLAUSE_END.search(text, before.end, following.start) is None


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around text[start:end]."""
    first = max((m.end() for m in SENTENCE_END.finditer(text, 0, start)), default=0)
    last = SENTENCE_END.search(text, end)
    return first, last.start() if last else len(text)


def _in(by_role: Index, role: str, start: int, end: int) -> list[Hit]:
    return [h for h in by_role.get(role, ()) if start <= h.start and h.end <= end]


def _clauses(text: str, start: int, end: int) -> tuple[int, int]:
    """The clauses around text[start:end]: from the start of the first to the end of the last."""
    first = max((m.end() for m in CLAUSE_END.finditer(text, 0, start)), default=0)
    last = CLAUSE_END.search(text, end)
    return first, last.start() if last else len(text)


def _experiential(text: str, candidate: _Candidate) -> bool:
    """A Chinese term of the cue followed by 过 ("塌陷过", "着过火"): it has happened. Not 过来/过去, which
    say where it goes ("烧过来了")."""
    return any(
        not t.latin and text.startswith("过", t.end) and not text.startswith(("过来", "过去"), t.end)
        for t in candidate.terms
    )


def _corrected(text: str, by_role: Index, candidate: _Candidate, start: int, end: int) -> bool:
    """Whether the sentence denies the cue's hazard elsewhere, after or apart from it: "闻到煤气味，燃气公司
    测过了，没有泄漏", "that wasn't a fire, just the kitchen burning toast". A state of the same hazard, or a
    phrase over it, with a negation before it in its clause; objects alone ("没人管") deny nothing."""
    states = [h for name in candidate.hazards for h in _in(by_role, f"state:{name}", start, end)]
    phrases = [
        h
        for h in _in(by_role, "phrase:emergency", start, end)
        if h.term in {t.term for t in candidate.terms} or _hazards_over(by_role, h) & candidate.hazards
    ]
    # Not a state too common to mean the hazard ("还有工人没出来"), nor by a near miss
    # ("围墙倒了，差点砸到行人": the wall fell)
    denied = [h for h in (*states, *phrases) if "unasked" not in h.roles]
    negations = [n for n in by_role.get("negation", ()) if "near_miss" not in n.roles]
    return any(_clause_bounded(text, n, _Candidate("", (h,), frozenset())) for h in denied for n in negations)


def _taken_back(text: str, by_role: Index, candidate: _Candidate) -> str | None:
    """Why a cue does not count (the role of the word that takes it back), or None if it counts."""
    for role in ("negation", "hypothetical"):
        if any(_clause_bounded(text, h, candidate) for h in by_role.get(role, ())):
            return role
    if _experiential(text, candidate):
        return "past"
    start, end = _sentence(text, candidate.start, candidate.end)
    if _corrected(text, by_role, candidate, start, end):
        return "negation"
    for role in (
        "resolved",
        "prevention",
        "figurative",
        *(f"explained:{name}" for name in candidate.hazards),
    ):
        if _in(by_role, role, start, end):
            return role.split(":")[0]
    # "It goes on" counts in the cue's own clauses only: "去年着过火，现在他们又堆满了纸箱" is past.
    if _in(by_role, "past", start, end) and not _in(
        by_role, "present", *_clauses(text, candidate.start, candidate.end)
    ):
        return "past"
    return None


class Detector:
    """The cue file and, optionally, the urgency model's scorer (text -> probability of an emergency)."""

    def __init__(self, cues: CueFile, scorer: Scorer | None = None, threshold: float = 0.5) -> None:
        self._cues = cues
        self._scorer = scorer
        self._threshold = threshold
        self._hazards = list(cues.combos)

    def __call__(self, text: str, category: str | None) -> Urgency:
        clean = cue_text(text or "")
        by_role = _index(self._cues.lexicon.scan(clean)) if clean else {}
        taken_back: str | None = None
        for candidate in (*_phrases(by_role, "emergency"), *_combos(self._cues, by_role)):
            why = _taken_back(clean, by_role, candidate)
            if why is None:
                return Urgency("emergency", candidate.cue)
            taken_back = taken_back or f"{why}:{candidate.cue}"
        model_said: str | None = None
        if taken_back is None and self._scorer is not None:
            sentences = _model_sentences(clean, by_role, self._hazards)
            if sentences:
                score = max(self._scorer(s) for s in sentences)
                model_said = f"model:{score:.2f}"
                if score >= self._threshold:
                    return Urgency("emergency", model_said)
        for level in _LOWER:
            for candidate in _phrases(by_role, level):
                if not any(_clause_bounded(clean, h, candidate) for h in by_role.get("negation", ())):
                    return Urgency(level, candidate.cue)
        if category is not None and category in self._cues.categories:
            return Urgency(cast(Level, self._cues.categories[category]), f"category:{category}")
        return Urgency("general", taken_back or model_said or "none")

    def doubts(self, text: str) -> list[str]:
        """What in the text casts doubt on an emergency though it took no cue back, as "role:word": a
        negation, a past time, a repair, a joke... out of a cue's reach ("没人被困，电梯停在一楼不动了"), or a
        question mark. The urgency reviewer lists the flags it doubts for an operator when e5 agrees."""
        clean = cue_text(text or "")
        by_role = _index(self._cues.lexicon.scan(clean)) if clean else {}
        cues = [h for role, hits in by_role.items() if role.startswith(("phrase:", "state:")) for h in hits]
        named: dict[int, str] = {}  # by position: a word of several roles is named by the first
        for role in _DOUBTS:
            for h in by_role.get(role, ()):
                # not a word inside a cue's own term (不 of 不动了, "no" of "not breathing")
                if not any(c.start <= h.start and h.end <= c.end and c != h for c in cues):
                    named.setdefault(h.start, f"{role}:{h.word}")
        words = [named[at] for at in sorted(named)]
        return [*words, "question:?"] if "?" in clean else words

    def smell_only(self, text: str) -> bool:
        """Whether the text is about a smell or dust and nothing the lexicon would ask about: it mentions
        an odour word, and every hazard state it mentions is an `unasked` one; or a dust word and no hazard
        object. The city's policy is that a lingering odour is not an emergency; the lexicon alone decides
        when a smell makes one ("gas" + "smell"). Dust is a nuisance the same way, but its complaints name
        states of hazards ("dust flying everywhere"): an object is what marks one worth asking about."""
        clean = cue_text(text or "")
        by_role = _index(self._cues.lexicon.scan(clean)) if clean else {}
        if by_role.get("phrase:emergency"):
            return False
        if by_role.get("nuisance") and not any(role.startswith("object:") for role in by_role):
            return True
        if not by_role.get("odour"):
            return False
        states = (h for name in self._hazards for h in by_role.get(f"state:{name}", ()))
        return all("unasked" in h.roles for h in states)


@lru_cache(maxsize=4)
def detector(model: Path = DEFAULT_MODEL) -> Detector:
    """The cue file with the urgency model of `model` (default: the one shipped in data/)."""
    urgency_model = UrgencyModel.load(model)
    return Detector(load(), urgency_model.score, urgency_model.threshold)


def urgency_of(text: str, category: str | None) -> Urgency:
    return detector()(text, category)
