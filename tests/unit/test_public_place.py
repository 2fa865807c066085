"""What Open311 may publish of where a phone-call ticket is: the street, coordinates on a ~500 m grid."""

from __future__ import annotations

import pytest

from services.intake.public_place import public_place, rounded, street_of
from shared.store import Ticket


@pytest.mark.parametrize(
    ("address", "street"),
    [
        ("西山街道 幸福路 8 号", "西山街道 幸福路"),
        ("北京市朝阳区建国路88号3单元502室", "北京市朝阳区建国路"),
        ("幸福路第8号", "幸福路"),
        ("No. 5 Xingfu Road", "Xingfu Road"),
        ("12 Main Street", "Main Street"),
        ("88号", None),
    ],
)
def test_the_street_is_kept_and_the_house_number_dropped(address: str, street: str | None) -> None:
    assert street_of(address) == street


def test_coordinates_are_rounded_to_a_grid_of_about_500_m() -> None:
    assert (rounded(39.9312), rounded(116.4137), rounded(None)) == (39.93, 116.415, None)
    assert abs(rounded(39.9312) - 39.9312) * 111_000 <= 0.0025 * 111_000  # within half a cell


def test_a_citizen_s_own_open311_request_keeps_what_they_published() -> None:
    phoned = Ticket(ticket_id="T1", channel="telephony", address="幸福路 8 号", lat=39.9312, lon=116.4137)
    posted = phoned.model_copy(update={"channel": "open311"})
    assert public_place(posted, []) == ("幸福路 8 号", 39.9312, 116.4137)
    assert public_place(phoned, ["street", "rounded"]) == ("幸福路", 39.93, 116.415)
    assert public_place(phoned, ["street"]) == ("幸福路", None, None)
    assert public_place(phoned, ["rounded"]) == (None, 39.93, 116.415)
    assert public_place(phoned, []) == (None, None, None)
