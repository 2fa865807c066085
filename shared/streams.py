"""Stream and consumer-group names: the one place they are spelled.

Every stream carries one event type (see `shared.events.STREAM_EVENTS`).
"""

from __future__ import annotations

RECEIVED = "tickets.received"
CLASSIFIED = "tickets.classified"
REVIEW = "tickets.review"
DISPATCHED = "tickets.dispatched"
UPDATED = "tickets.updated"
REOPENED = "tickets.reopened"
REROUTED = "tickets.rerouted"
ESCALATED = "tickets.escalated"
SURVEYS_ANSWERED = "surveys.answered"
HOTSPOTS = "alerts.hotspot"
# Problems (insight): found, acted on by a proactive work order, and whether the calls stopped.
PROBLEMS_DETECTED = "problems.detected"
PROBLEMS_ACTIONED = "problems.actioned"
PROBLEMS_EVALUATED = "problems.evaluated"
OUTBOUND_DLQ = "dispatch.outbound.dlq"
"""Webhook deliveries to departments that failed their last try (not an event stream: fields, no model)."""

CLASSIFIER = "classifier"
DISPATCH = "dispatch"
EVALUATION = "evaluation"
INSIGHT = "insight"

# Which groups read which stream. The init step creates each group at id 0 so that nothing
# published before a worker first started is skipped (a group created at `$` would skip it).
GROUPS: dict[str, tuple[str, ...]] = {
    RECEIVED: (CLASSIFIER,),
    CLASSIFIED: (DISPATCH, INSIGHT),
    DISPATCHED: (EVALUATION,),
    UPDATED: (DISPATCH, EVALUATION),
    REOPENED: (DISPATCH,),
    REROUTED: (DISPATCH,),
    SURVEYS_ANSWERED: (EVALUATION,),
    REVIEW: (),
    ESCALATED: (),
    HOTSPOTS: (),
    PROBLEMS_DETECTED: (),
    PROBLEMS_ACTIONED: (),
    PROBLEMS_EVALUATED: (),
}

ALL_STREAMS: tuple[str, ...] = tuple(GROUPS)


def dlq(stream: str) -> str:
    """The dead-letter stream of `stream`."""
    return f"{stream}.dlq"
