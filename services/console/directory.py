"""Names for codes: categories (taxonomy), departments (routing table), districts and streets (gazetteer),
in the language of the page, and the districts' polygons for the map."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.console.i18n import Lang, pick, translate
from services.intake.deps import load_department_names
from shared.settings import CommonSettings
from shared.taxonomy import ConfigError, load_taxonomy

_LATIN = re.compile(r"^[A-Za-z][A-Za-z .'-]*$")


@dataclass(frozen=True)
class Area:
    code: str
    zh: str
    en: str

    def name(self, lang: Lang) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True)
class District(Area):
    polygon: tuple[tuple[float, float], ...] = ()
    streets: tuple[Area, ...] = field(default=())


def _area(item: dict[str, Any]) -> tuple[str, str, str]:
    zh = str(item.get("name") or item["code"])
    latin = [str(a) for a in item.get("aliases") or [] if _LATIN.match(str(a))]
    # The longest Latin alias is the most complete ("Donghu District" rather than "Donghu").
    return str(item["code"]), zh, max(latin, key=len) if latin else zh


def load_districts(path: Path) -> list[District]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        districts = []
        for d in data["districts"]:
            code, zh, en = _area(d)
            streets = tuple(Area(*_area(s)) for s in d.get("streets") or [])
            ring = tuple((float(lon), float(lat)) for lon, lat in d.get("polygon") or [])
            districts.append(District(code, zh, en, ring, streets))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return districts


class Directory:
    def __init__(self, settings: CommonSettings) -> None:
        taxonomy = load_taxonomy(settings.taxonomy_path)
        self.categories = {c.code: c.name for c in taxonomy.categories}
        self.departments = load_department_names(settings.routing_path)
        self.districts = load_districts(settings.gazetteer_path)
        self._areas: dict[str, Area] = {}
        for d in self.districts:
            self._areas[d.code] = d
            self._areas.update({s.code: s for s in d.streets})

    def category(self, code: str | None, lang: Lang) -> str:
        return pick(lang, self.categories[code]) if code in self.categories else code or "-"

    def department(self, code: str | None, lang: Lang) -> str:
        return pick(lang, self.departments[code]) if code in self.departments else code or "-"

    def area(self, code: str | None, lang: Lang) -> str:
        """A district's or street's name (a code the gazetteer does not know shows as itself)."""
        area = self._areas.get(code or "")
        if area is None:
            return translate(lang, "unknown") if code in (None, "", "-", "unknown") else str(code)
        return area.name(lang)
