"""A ticket's status, and the moves between statuses: the one place both are spelled.

Intake writes `received`; dispatch alone writes every later status. Dispatch's handlers check each
move against `TRANSITIONS` before they write it, so a new path through the life of a ticket is added
here (and shows in docs/data-contract.md) or it is refused.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    # With the coordinator (统筹): the routing table named no one, or every department rejected it.
    COORDINATOR = "coordinator"
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    DUPLICATE = "duplicate"


# Where each status may go next. A re-dispatch (rejection, re-routing, reopening) moves an active or
# resolved ticket to `dispatched` or `coordinator` again; a duplicate is final.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.DISPATCHED, Status.COORDINATOR, Status.DUPLICATE}),
    Status.DISPATCHED: frozenset({Status.DISPATCHED, Status.COORDINATOR, Status.ACCEPTED, Status.RESOLVED}),
    Status.COORDINATOR: frozenset({Status.DISPATCHED, Status.COORDINATOR, Status.ACCEPTED, Status.RESOLVED}),
    Status.ACCEPTED: frozenset({Status.DISPATCHED, Status.COORDINATOR, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.DISPATCHED, Status.COORDINATOR}),
    Status.DUPLICATE: frozenset(),
}

# A department has it: it may accept, reject or resolve it, and an operator may re-route it.
ACTIVE: frozenset[Status] = frozenset({Status.DISPATCHED, Status.COORDINATOR, Status.ACCEPTED})

# Done (Open311 "closed"): departments can no longer act on it, and a new complaint cannot be its duplicate.
CLOSED: frozenset[Status] = frozenset({Status.RESOLVED, Status.DUPLICATE})


class IllegalTransitionError(ValueError):
    """A handler tried a move `TRANSITIONS` does not allow."""


def moved(current: str, to: Status) -> Status:
    """`to`, once checked as a move from `current` (a status as read from the store)."""
    if to not in TRANSITIONS[Status(current)]:
        raise IllegalTransitionError(f"a ticket cannot go from {current} to {to}")
    return to
