"""The routing table: which department fixes a category in a district."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.taxonomy import ConfigError


class Department(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    categories: list[str] = []
    districts: list[str] = []


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    department: str
    district: str | None = None
    priority: int = 0


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = 1
    departments: list[Department] = Field(min_length=1)
    rules: list[Rule] = []
    fallback: str

    @model_validator(mode="after")
    def _known_departments(self) -> RoutingTable:
        ids = {d.id for d in self.departments}
        for i, rule in enumerate(self.rules):
            if rule.department not in ids:
                raise ValueError(f"rules[{i}]: unknown department {rule.department!r}")
        if self.fallback not in ids:
            raise ValueError(f"fallback: unknown department {self.fallback!r}")
        return self

    def route(self, category: str, district: str | None) -> tuple[str, str]:
        """(department, reason): the most specific, then highest-priority rule; else the fallback."""
        matches = [
            r for r in self.rules if r.category == category and (r.district is None or r.district == district)
        ]
        if matches:
            best = max(matches, key=lambda r: (r.district is not None, r.priority))
            where = f" in {best.district}" if best.district else ""
            return best.department, f"rule: {category}{where} -> {best.department}"
        return self.fallback, f"fallback: no rule for {category}"


def load_routing(path: Path) -> RoutingTable:
    try:
        return RoutingTable.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
