"""Where a ticket is, as Open311 publishes it. A citizen filing through Open311 chose what to publish;
a caller or a call centre did not, so for tickets from every other channel only the street (no house
number) and coordinates rounded to a grid of about 500 m are shown, each as `HOTLINE_OPEN311_PUBLIC_LOCATION`
allows (`street`, `rounded`, both, or nothing)."""

from __future__ import annotations

import re
from typing import Literal

from shared.store import Ticket

Shown = Literal["street", "rounded"]
# 0.005° is 556 m of latitude, and 426 m of longitude at Beijing's 40° N.
GRID = 0.005
_DIGIT = re.compile(r"\d")
_NUMBERED_WORD = re.compile(r"\S*\d\S*")
_SPACE = re.compile(r"\s+")
_NUMBER_SIGN = re.compile(r"(?i)(?:\bno\.?|第)\s*(?=\d)")
_TRAILING = " ,，、;；:：-#"


def street_of(address: str) -> str | None:
    """The address without its house number and what follows it: a Chinese address names the street
    before the number (幸福路 8 号 3 单元), so it is cut at the first digit; an address that starts with
    its number (12 Main Street) loses every word holding a digit instead."""
    address = _NUMBER_SIGN.sub("", address)
    head = _DIGIT.split(address, maxsplit=1)[0].strip(_TRAILING + " ")
    if len(head.replace(" ", "")) >= 2:
        return _SPACE.sub(" ", head)
    rest = _SPACE.sub(" ", _NUMBERED_WORD.sub(" ", address)).strip(_TRAILING + " ")
    return rest or None


def rounded(value: float | None) -> float | None:
    return None if value is None else round(round(value / GRID) * GRID, 3)


def public_place(ticket: Ticket, shown: list[Shown]) -> tuple[str | None, float | None, float | None]:
    """(address, lat, long) Open311 may publish of `ticket`."""
    if ticket.channel == "open311":
        return ticket.address, ticket.lat, ticket.lon
    address = street_of(ticket.address) if ticket.address and "street" in shown else None
    if "rounded" not in shown:
        return address, None, None
    return address, rounded(ticket.lat), rounded(ticket.lon)
