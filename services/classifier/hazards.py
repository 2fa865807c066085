"""Hazard kinds of emergencies and the categories whose departments act on them (data/hazards.yaml).

An emergency sent to a department that cannot act on it waits: a stroke filed under utilities goes to the
water company. The mapping is by category, not department: the classifier files tickets on the taxonomy,
and dispatch's routing (a city's own routing.yaml) turns a category and a district into a department.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

HAZARD_FILE = Path(__file__).resolve().parent / "data" / "hazards.yaml"


class Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str = Field(description="the category whose departments are responsible")
    also: tuple[str, ...] = Field(default=(), description="other categories whose departments act on it too")
    aliases: tuple[str, ...] = ()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: dict[str, Kind] = Field(min_length=2)


@dataclass(frozen=True)
class Hazards:
    kinds: dict[str, Kind]

    def name(self, label: str) -> str | None:
        """The kind a label names (a kind, or one of its aliases), or None (`other`, a non-emergency)."""
        if label in self.kinds:
            return label
        return next((k for k, kind in self.kinds.items() if label in kind.aliases), None)

    def acts(self, kind: str, category: str | None) -> bool:
        """Whether the departments of `category` can act on a hazard of this kind."""
        found = self.kinds[kind]
        return category == found.category or category in found.also

    def category(self, kind: str) -> str:
        return self.kinds[kind].category


@lru_cache(maxsize=4)
def load(path: Path = HAZARD_FILE) -> Hazards:
    body = _File.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    names = [*body.kinds, *(a for k in body.kinds.values() for a in k.aliases)]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a kind or an alias is named twice")
    return Hazards(dict(body.kinds))
