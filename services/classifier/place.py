"""Where a complaint is: district and street from coordinates (point in polygon) or from the text (gazetteer).

Coordinates win when they fall inside a district. Text matching takes the longest alias found, so "北湖滨"
beats "湖滨". Anything ambiguous or unmatched stays None: a wrong district sends the ticket to the wrong
office, which is worse than asking a human. Districts and streets are reported by their gazetteer `code`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

DEFAULT_GAZETTEER = Path(__file__).resolve().parents[2] / "shared" / "data" / "gazetteer.yaml"

Point = tuple[float, float]  # (lon, lat)


@dataclass(frozen=True)
class Place:
    district: str | None
    street: str | None
    source: Literal["coordinates", "text", "unknown"]


@dataclass(frozen=True)
class _Area:
    code: str
    district: str  # the district code (itself, for a district)
    names: tuple[str, ...]


class GazetteerError(ValueError):
    pass


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def point_in_polygon(point: Point, polygon: list[Point]) -> bool:
    """Ray casting (even-odd rule); points exactly on an edge may fall either way."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _names(item: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_norm(str(n)) for n in [item.get("name"), *(item.get("aliases") or [])] if n)


class Gazetteer:
    def __init__(self, data: Any) -> None:
        districts = data.get("districts") if isinstance(data, dict) else None
        if not isinstance(districts, list) or not districts:
            raise GazetteerError("a gazetteer needs a non-empty 'districts' list")
        self._polygons: list[tuple[str, list[Point]]] = []
        self._areas: list[_Area] = []
        for d in districts:
            if not isinstance(d, dict) or not isinstance(d.get("code"), str):
                raise GazetteerError("every district needs a string 'code'")
            self._areas.append(_Area(d["code"], d["code"], _names(d)))
            if d.get("polygon"):
                ring = [(float(lon), float(lat)) for lon, lat in d["polygon"]]
                if len(ring) < 3:
                    raise GazetteerError(f"district {d['code']}: a polygon needs at least 3 points")
                self._polygons.append((d["code"], ring))
            for s in d.get("streets") or []:
                if not isinstance(s, dict) or not isinstance(s.get("code"), str):
                    raise GazetteerError(f"district {d['code']}: every street needs a string 'code'")
                self._areas.append(_Area(s["code"], d["code"], _names(s)))
        # One alternation, longest names first: the regex engine then prefers the longest name at a position.
        by_name: dict[str, list[_Area]] = {}
        for area in self._areas:
            for name in area.names:
                by_name.setdefault(name, []).append(area)
        self._by_name = by_name
        names = sorted(by_name, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(n) for n in names))

    @classmethod
    def from_yaml(cls, path: Path) -> Gazetteer:
        try:
            return cls(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, TypeError, ValueError) as exc:
            raise GazetteerError(f"{path}: {exc}") from None

    def district_at(self, lon: float, lat: float) -> str | None:
        hits = [code for code, ring in self._polygons if point_in_polygon((lon, lat), ring)]
        return hits[0] if len(hits) == 1 else None

    def _text_matches(self, text: str) -> list[_Area]:
        """Areas named in the text; a name shared by several areas counts for none of them."""
        found: list[_Area] = []
        clean = _norm(text)
        matches = sorted(self._pattern.finditer(clean), key=lambda m: len(m.group()), reverse=True)
        taken: list[tuple[int, int]] = []
        for m in matches:
            # A shorter name inside a longer match ("湖滨" in "北湖滨") is part of that match, not a mention.
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append((m.start(), m.end()))
            areas = self._by_name[m.group()]
            if len(areas) == 1:
                found.append(areas[0])
        return found

    def locate(self, text: str | None, lat: float | None, lon: float | None) -> Place:
        mentioned = self._text_matches(text) if text else []
        if lat is not None and lon is not None:
            district = self.district_at(lon, lat)
            if district is not None:
                streets = {a.code for a in mentioned if a.district == district and a.code != district}
                return Place(district, streets.pop() if len(streets) == 1 else None, "coordinates")
        districts = {a.district for a in mentioned}
        if len(districts) != 1:  # nothing named, or names in several districts: do not pick one
            return Place(None, None, "unknown")
        district = districts.pop()
        streets = {a.code for a in mentioned if a.code != district}
        return Place(district, streets.pop() if len(streets) == 1 else None, "text")


@lru_cache(maxsize=1)
def default_gazetteer() -> Gazetteer:
    return Gazetteer.from_yaml(DEFAULT_GAZETTEER)


def locate(text: str | None, lat: float | None, lon: float | None) -> Place:
    """Locate with the default gazetteer (shared/data/gazetteer.yaml)."""
    return default_gazetteer().locate(text, lat, lon)
