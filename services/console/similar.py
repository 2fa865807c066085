"""Suspected duplicates on the review queue: for each ticket, the open ticket before it in the same
district and category whose text is most alike, when alike enough to ask an operator but not enough for
the classifier to call it a repeat (a repeat is closed as a duplicate at once, and never waits for review).

Read-only use of the classifier's repeat index (`services/classifier/duplicates.py`: the tickets of each
district and category within its window, and each ticket's MinHash signature), compared as the classifier
compares, with a lower bar."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from services.classifier.duplicates import (
    SIGNATURE_FIELD,
    DuplicateIndex,
    Match,
    Policy,
    decode_signature,
    find_original,
)
from services.console.reads import Row

# Half the classifier's default repeat threshold (0.5): the same complaint told in other words shares a
# quarter of its character pairs (a MinHash estimate, ±0.06).
SUSPECT = 0.25
# The classifier trims its index to its own window; the console looks at whatever the index holds.
POLICY = Policy(window_seconds=float("inf"), threshold=SUSPECT, max_candidates=50)


async def suspected(redis: Redis, rows: Sequence[Row]) -> dict[str, Match]:
    """Ticket id -> the ticket it may repeat, for the rows that have one."""
    placed = [
        (row, (t.district, t.category), sig)
        for row in rows
        if (t := row.ticket).district
        and t.category
        and t.received_at
        and (raw := row.extra.get(SIGNATURE_FIELD))
        and (sig := decode_signature(raw)) is not None
    ]
    if not placed:
        return {}
    wanted = dict.fromkeys((bucket for _, bucket, _ in placed), float("-inf"))
    candidates = await DuplicateIndex(redis, POLICY).candidates(wanted)
    out: dict[str, Match] = {}
    for row, bucket, sig in placed:
        t = row.ticket
        assert t.received_at is not None
        match = find_original(
            t.ticket_id, t.received_at.timestamp(), t.street, sig, candidates[bucket], POLICY
        )
        if match is not None:
            out[t.ticket_id] = match
    return out
