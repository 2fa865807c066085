"""Inline SVG drawn on the server: the 7-day forecast and the district map. No chart library and no map
tiles: the page must work offline, and these two pictures are a few dozen shapes each."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from services.console.directory import District


@dataclass(frozen=True)
class Shape:
    """One district on the map: its outline, where its label goes, its figures and its colour."""

    code: str
    name: str
    points: str
    label_x: float
    label_y: float
    open_count: int
    hotspots: int
    fill: str


def _heat(share: float) -> str:
    # From pale blue (few open tickets) to deep blue (the most), so busy districts stand out.
    light, dark = (232, 240, 252), (30, 90, 180)
    r, g, b = (round(a + (z - a) * share) for a, z in zip(light, dark, strict=True))
    return f"rgb({r},{g},{b})"


@dataclass(frozen=True)
class MapView:
    shapes: list[Shape]
    width: int
    height: int


def district_map(
    districts: Sequence[District],
    open_counts: Mapping[str, int],
    hotspots: Mapping[str, int],
    name: Callable[[District], str],
    size: int = 420,
) -> MapView:
    """The districts projected (equirectangular: fine at a city's scale) so the longer side is `size`."""
    rings = [d for d in districts if len(d.polygon) >= 3]
    if not rings:
        return MapView([], size, size)
    xs = [x for d in rings for x, _ in d.polygon]
    ys = [y for d in rings for _, y in d.polygon]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    scale = (size - 20) / max(span_x, span_y)
    # Shaded against the busiest district drawn: tickets with no district would wash every colour out.
    top = max((open_counts.get(d.code, 0) for d in rings), default=0) or 1

    def at(lon: float, lat: float) -> tuple[float, float]:
        return 10 + (lon - min(xs)) * scale, 10 + (max(ys) - lat) * scale  # north up

    shapes = []
    for d in rings:
        pts = [at(lon, lat) for lon, lat in d.polygon]
        # The label sits at the vertex average: inside for the convex and L-shaped districts we draw.
        cx, cy = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        count = open_counts.get(d.code, 0)
        shapes.append(
            Shape(
                code=d.code,
                name=name(d),
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y in pts),
                label_x=round(cx, 1),
                label_y=round(cy, 1),
                open_count=count,
                hotspots=hotspots.get(d.code, 0),
                fill=_heat(count / top),
            )
        )
    return MapView(shapes, round(span_x * scale) + 20, round(span_y * scale) + 20)


def forecast_svg(forecast: Mapping[str, object], width: int = 520, height: int = 200) -> str:
    """The city's next 7 days: the point forecast as a line inside its interval band."""
    days = [str(d) for d in forecast.get("days", [])]  # type: ignore[attr-defined]
    point = [float(v) for v in forecast.get("point", [])]  # type: ignore[attr-defined]
    lower = [float(v) for v in forecast.get("lower", [])]  # type: ignore[attr-defined]
    upper = [float(v) for v in forecast.get("upper", [])]  # type: ignore[attr-defined]
    if not days or not (len(days) == len(point) == len(lower) == len(upper)):
        return ""
    left, bottom, pad = 44, 28, 10
    top_value = max(upper) * 1.1 or 1.0
    step = (width - left - pad) / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return pad + (height - bottom - pad) * (1 - v / top_value)

    band = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(upper))
    band += " " + " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in reversed(list(enumerate(lower))))
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(point))
    parts = [
        f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" aria-label="forecast">',
        f'<polygon points="{band}" class="band"/>',
        f'<polyline points="{line}" class="line"/>',
    ]
    for tick in (0.0, top_value / 2, top_value):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" class="axis" text-anchor="end">{tick:.0f}</text>'
        )
    for i, (day, v) in enumerate(zip(days, point, strict=True)):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" class="dot"/>')
        label = escape(day[5:])
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" class="axis" text-anchor="middle">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
