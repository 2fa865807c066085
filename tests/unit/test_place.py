from __future__ import annotations

from pathlib import Path

import pytest

from services.classifier.place import Gazetteer, GazetteerError, Place, locate, point_in_polygon


def test_text_match_prefers_the_longest_alias() -> None:
    assert locate("北湖滨小区停水", None, None) == Place("beiyuan", "beiyuan_hubin", "text")
    assert locate("湖滨路井盖丢了", None, None) == Place("donghu", "donghu_hubin", "text")
    assert locate("东湖区文化路的路灯坏了", None, None) == Place("donghu", "donghu_wenhua", "text")
    assert locate("Pothole on Haiyun Road near the wharf", None, None) == Place(
        "nangang", "nangang_haiyun", "text"
    )
    assert locate("Noise in Xishan District", None, None) == Place("xishan", None, "text")


def test_unknown_stays_unknown() -> None:
    assert locate("路灯坏了", None, None) == Place(None, None, "unknown")
    assert locate(None, None, None) == Place(None, None, "unknown")
    # Two districts named: never pick one.
    assert locate("东湖和西山都停电了", None, None) == Place(None, None, "unknown")
    # Outside every polygon (the notch of the L-shaped district) and no text.
    assert locate("x", 30.07, 120.05) == Place(None, None, "unknown")


def test_coordinates_win_over_text() -> None:
    assert locate("路灯坏了", 30.15, 120.15) == Place("donghu", None, "coordinates")
    assert locate("文化路的路灯坏了", 30.15, 120.15) == Place("donghu", "donghu_wenhua", "coordinates")
    # A street of another district is not attached to the district the coordinates give.
    assert locate("松林路的路灯坏了", 30.15, 120.15) == Place("donghu", None, "coordinates")
    assert locate("south of the L", 30.02, 120.05) == Place("nangang", None, "coordinates")


def test_point_in_polygon() -> None:
    square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    assert point_in_polygon((0.5, 0.5), square)
    assert not point_in_polygon((1.5, 0.5), square)


def test_gazetteer_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "districts:\n  - {code: a, name: 甲区, aliases: [Alpha], streets: [{code: a1, name: 一街}]}\n",
        encoding="utf-8",
    )
    assert Gazetteer.from_yaml(path).locate("alpha 一街", None, None) == Place("a", "a1", "text")
    path.write_text("districts: []\n", encoding="utf-8")
    with pytest.raises(GazetteerError):
        Gazetteer.from_yaml(path)
