"""What the public reads of a status change: FixMyStreet's status words, agencies, no phone numbers."""

from __future__ import annotations

import pytest

from services.intake.open311 import FMS_STATUS, _described, _public

WATER = "水务集团 / Water Utility"


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ({"status": "received", "event": "received", "summary": "via telephony"}, "Received via telephony"),
        (
            {"status": "dispatched", "event": "dispatched", "summary": "to w: rule priority 10"},
            f"Sent: with {WATER}",
        ),
        (
            {"status": "dispatched", "event": "rejected", "summary": "by x: not ours; to w: ..."},
            f"Passed on: with {WATER}",
        ),
        (
            {"status": "coordinator", "event": "reopened", "summary": "not fixed; to c: ..."},
            f"Reopened: with {WATER}",
        ),
        (
            {"status": "dispatched", "event": "rerouted", "summary": "from x by op: ..."},
            f"Transferred: with {WATER}",
        ),
        ({"status": "accepted", "event": "accept", "note": None}, f"Accepted by {WATER}"),
        ({"status": "duplicate", "event": "duplicate", "summary": "of T123"}, "Duplicate of T123"),
    ],
)
def test_routing_reasons_and_rejection_notes_stay_internal(entry: dict[str, str | None], text: str) -> None:
    assert _described(entry, WATER) == text


@pytest.mark.parametrize(
    ("note", "public"),
    [
        ("called 13912345678", "called [number removed]"),
        ("call +86 139-1234-5678 or (010) 6512 3456", "call [number removed] or [number removed]"),
        ("fixed on 2026-11-28, 3 crews, order 42", "fixed on 2026-11-28, 3 crews, order 42"),
        ("meter 1234567", "meter [number removed]"),
    ],
)
def test_phone_like_digit_runs_are_blanked(note: str, public: str) -> None:
    assert _public(note) == public


def test_every_status_maps_to_a_fixmystreet_word() -> None:
    words = {"open", "closed", "fixed", "in_progress", "investigating", "duplicate"}
    assert set(FMS_STATUS.values()) <= words
    assert (FMS_STATUS["accepted"], FMS_STATUS["resolved"], FMS_STATUS["coordinator"]) == (
        "in_progress",
        "fixed",
        "investigating",
    )
