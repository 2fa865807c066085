"""Named places in a complaint: estates (小区, 花园, 苑, 城...), roads (路, 街, 大道), schools, companies
and named cases, as keys that tell one issue from another.

Character similarity cannot tell that "魅力之城小区临街门面油烟直排扰民" and "润芳园小区临街门面油烟直排扰民"
are two issues, or that "58车贷案件进展" and "严惩58车贷诈骗案保护伞" are one. A place named in the title
(or, failing that, the opening of the text) is a key: two messages naming different places are different
issues, and fragments naming the same place are candidates to merge.

Names are normalised by dropping the generic tail (小区, 项目...), and two names match when one ends with
the other: "万科魅力之城" and "魅力之城", "一师润芳园" and "润芳园".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["estate", "road", "school", "company"]
# The most telling first: a company or named case is one issue, an estate a small place, a road a long one.
KINDS: tuple[Kind, ...] = ("company", "estate", "school", "road")

_HAN = r"[\u4e00-\u9fff]"
# A name: Chinese characters, letters and digits, not starting with a verb of complaint or a pronoun.
_NAME = rf"(?:{_HAN}|[A-Za-z0-9]){{2,8}}?"
_PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("company", re.compile(rf"({_NAME}(?:车贷|金融|理财|集团|公司|银行|医院|平台|物业))")),
    ("school", re.compile(rf"({_NAME}(?:小学|中学|大学|学院|学校|幼儿园|一中|二中|实验学校))")),
    (
        "estate",
        re.compile(rf"({_NAME}(?:小区|花园|家园|新城|之城|新村|公寓|大厦|广场|山庄|苑|园|城|府|湾|郡))"),
    ),
    ("road", re.compile(rf"({_NAME}(?:大道|路|街|巷))")),
)
# Complaint phrasing and pronouns that the lazy name would otherwise take as the start of a place.
_LEAD = re.compile(
    r"^(?:关于|投诉|举报|反映|反应|请问|咨询|建议|要求|希望|请求|恳请|强烈|再次|紧急|严惩|承办|请|问|对|在|的|和|与|及|我们|我|本|该|这个|那个|这|那|此|附近|周边|旁边|位于|市|区|县|省)+"
)
# Names that are generic words, not places (what is left once the lead is dropped).
_GENERIC_NAMES = {
    "小区",
    "花园",
    "公园",
    "校园",
    "家园",
    "商城",
    "县城",
    "城区",
    "市区",
    "老城",
    "新城",
    "园区",
    "马路",
    "道路",
    "街道",
    "公路",
    "铁路",
    "线路",
    "出路",
    "思路",
    "门路",
    "网络平台",
    "公司",
    "学校",
    "医院",
    "物业",
    "银行",
    "集团",
    "政府",
    "幼儿园",
    "学院",
    "大学",
    "中学",
    "小学",
    "新村",
    "旧城",
}
# Anonymised administrative units ("A市", "A3区", "K9县", "西地省"): where, not which place.
_ADMIN = re.compile(r"[A-Z]\d{0,2}[市区县省]|西地省")
_AFTER_ROAD = re.compile(r"(?:大道|路|街|区)")
# "临街门面": facing the street, not a street's name.
_NOT_ROADS = ("临街", "沿街", "上街", "大街", "过马路")
# Function words, pronouns and dates do not occur in the names of places; a match holding one is a clause.
_NOT_IN_NAMES = re.compile(
    r"[的了是我你他她们被把让给将从向位]|\d[年月日号]|月份|有(?!限)|通过|政府|什么|怎么|如何|为何|为什么"
)
_TAIL = re.compile(r"(?:小区|项目|片区|社区|股份有限公司|有限责任公司|有限公司)$")
_TITLE_MIN = 6
_OPENING = 80


@dataclass(frozen=True)
class Place:
    kind: Kind
    name: str

    def matches(self, other: Place) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "company":  # "科技有限公司" must not match every "…科技有限公司": exact names only
            return self.name == other.name
        return self.name.endswith(other.name) or other.name.endswith(self.name)


def extract(text: str) -> list[Place]:
    """The named places of `text`, in order, each once."""
    found: list[Place] = []
    for clause in re.split(r"[，。,.！!？?；;：:、（）()\[\]【】“”\"'《》\s]+", _ADMIN.sub(" ", text)):
        for kind, pattern in _PATTERNS:
            for part in clause.split(" "):
                for match in pattern.finditer(part):
                    name = _clean(kind, match.group(1))
                    if name is not None and not any(p.kind == kind and p.name == name for p in found):
                        found.append(Place(kind, name))
    return _drop_contained(found)


def places_of(title: str, text: str) -> list[Place]:
    """The places a message is about: its title's, else those named in its opening."""
    if len(title.strip()) >= _TITLE_MIN and (places := extract(title)):
        return places
    return extract(f"{title} {text[:_OPENING]}")


def key(places: list[Place]) -> str | None:
    """The most telling place as one key: a company, else an estate, a school or a road."""
    for kind in KINDS:
        for p in places:
            if p.kind == kind:
                return f"{kind}:{p.name}"
    return None


def same_place(a: list[Place], b: list[Place]) -> bool:
    return any(x.matches(y) for x in a for y in b)


def shared(a: list[Place], b: list[Place]) -> Kind | None:
    """The kind of the most telling place both name: a company or named case (one issue whatever is said
    about it), else an estate, school or road (one issue only if the messages also say the same)."""
    kinds = {x.kind for x in a for y in b if x.matches(y)}
    return next((k for k in KINDS if k in kinds), None)


def different_places(a: list[Place], b: list[Place]) -> bool:
    """Both name an estate (or both a company), and none of them match: two different issues."""
    for kind in ("estate", "company"):
        xs, ys = [p for p in a if p.kind == kind], [p for p in b if p.kind == kind]
        if xs and ys and not same_place(xs, ys):
            return True
    return False


def _clean(kind: Kind, raw: str) -> str | None:
    name = _LEAD.sub("", raw)
    if kind != "road":  # "梅溪湖看云路一师润芳园": the estate is what follows the road (or the district)
        tail = _LEAD.sub("", _AFTER_ROAD.split(name)[-1])
        name = tail if len(tail) >= 2 else name
    if _NOT_IN_NAMES.search(name):
        return None
    name = _TAIL.sub("", name) if len(_TAIL.sub("", name)) >= 2 else name
    if len(name) < 2 or name in _GENERIC_NAMES or name.endswith(_NOT_ROADS) or len(name) > 12:
        return None
    return name


def _drop_contained(places: list[Place]) -> list[Place]:
    """A road found inside an estate's name ("梅溪湖看云路一师润芳园" gives both) stays; an estate that is
    the tail of a longer one of the same kind is the same place and is dropped."""
    out = []
    for p in places:
        if any(
            q is not p and q.kind == p.kind and q.name.endswith(p.name) and q.name != p.name for q in places
        ):
            continue
        out.append(p)
    return out
