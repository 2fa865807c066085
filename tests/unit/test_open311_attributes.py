"""Open311 attribute answers are checked against the service definition before a ticket is made."""

from __future__ import annotations

import pytest

from services.intake.http import HttpError
from services.intake.open311 import _checked
from shared.taxonomy import Attribute

DEPTH = Attribute(code="depth_cm", description="How deep is the water?", datatype="number")
SEEN = Attribute(code="seen_at", description="When did you see it?", datatype="datetime")


@pytest.mark.parametrize("value", ["12", "-3.5", "1e3", " 7 "])
def test_a_number_is_kept(value: str) -> None:
    assert _checked(DEPTH, [value]) == [value]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e999", "deep"])
def test_what_is_no_finite_number_is_refused(value: str) -> None:
    with pytest.raises(HttpError) as refused:
        _checked(DEPTH, [value])
    assert refused.value.status == 400 and "attribute[depth_cm]" in refused.value.message


def test_a_datetime_is_checked() -> None:
    assert _checked(SEEN, ["2026-11-28T08:00:00+08:00"]) == ["2026-11-28T08:00:00+08:00"]
    with pytest.raises(HttpError):
        _checked(SEEN, ["yesterday"])
