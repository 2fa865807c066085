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
RECORDER = "recorder"
# The urgency reviewer (services/classifier/review.py): a second opinion on classified tickets, in a process
# of its own; it writes as the classifier (the owner of urgency), its group is its own so it lags alone.
URGENCY_REVIEW = "urgency-review"

# Which groups read which stream. The init step creates each group at id 0 so that nothing
# published before a worker first started is skipped (a group created at `$` would skip it).
# The recorder reads every stream of ticket and problem events (not alerts.hotspot: an alert is about a
# series, and a problem's events already carry what its alerts said).
GROUPS: dict[str, tuple[str, ...]] = {
    RECEIVED: (CLASSIFIER, RECORDER),
    CLASSIFIED: (DISPATCH, INSIGHT, RECORDER, URGENCY_REVIEW),
    DISPATCHED: (EVALUATION, RECORDER),
    UPDATED: (DISPATCH, EVALUATION, RECORDER),
    REOPENED: (DISPATCH, RECORDER),
    REROUTED: (DISPATCH, RECORDER),
    SURVEYS_ANSWERED: (EVALUATION, RECORDER),
    REVIEW: (RECORDER,),
    ESCALATED: (RECORDER,),
    HOTSPOTS: (),
    PROBLEMS_DETECTED: (RECORDER,),
    PROBLEMS_ACTIONED: (RECORDER,),
    PROBLEMS_EVALUATED: (RECORDER,),
}

ALL_STREAMS: tuple[str, ...] = tuple(GROUPS)
TICKET_STREAMS: tuple[str, ...] = tuple(s for s, groups in GROUPS.items() if RECORDER in groups)

RECORDER_DLQ = "recorder.tickets.dlq"
"""Tickets whose state the recorder could not write to PostgreSQL (fields: ticket_id, rev, reason, error)."""


def dlq(stream: str) -> str:
    """The dead-letter stream of `stream`."""
    return f"{stream}.dlq"
