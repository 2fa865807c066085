"""The event contract between services.

Every event carries `event_id` (deterministic for retries), `ticket_id`, `occurred_at` (UTC) and a
schema `version`. Consumers ignore unknown fields, so producers can add fields without breaking them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared import streams


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must carry a timezone")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-14:00: pydantic turns only ValueError into a 422
        raise ValueError("datetime out of range once in UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

# "proactive": a work order the hotline opens itself for a problem (未诉先办), before more citizens call.
Channel = Literal["telephony", "twilio", "open311", "web", "app", "proactive"]
Urgency = Literal["emergency", "utilities", "general", "complex"]
Language = Literal["zh", "en"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = 1
    event_id: str = Field(min_length=1, max_length=64)
    ticket_id: str = Field(min_length=1, max_length=64)
    occurred_at: UtcDatetime


class Location(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=500)


class CallerRef(BaseModel):
    """A caller as the system keeps them: a keyed hash to link repeat callers, and a masked form to show."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    hash: str
    masked: str


class TicketReceived(Event):
    channel: Channel
    source_id: str = Field(description="The provider's own id (call id, request id) used to de-duplicate")
    text: str = Field(max_length=20_000)
    title: str | None = None
    language: Language | None = None
    caller: CallerRef | None = None
    contacts: list[CallerRef] | None = Field(
        default=None, description="Phone numbers given in the text (masked there), kept for a callback"
    )
    location: Location | None = None
    ivr_choice: str | None = None
    service_code: str | None = Field(default=None, description="A category chosen by the citizen, if any")
    media_url: str | None = Field(default=None, description="A photo of the problem (an http(s) URL)")
    handle_seconds: float | None = Field(
        default=None, ge=0, description="How long the call took, when the call centre says (staffing plans)"
    )
    received_at: UtcDatetime
    attributes: dict[str, list[str]] | None = Field(
        default=None, description="Answers to the service's extra questions (Open311 attribute[code])"
    )


class Place(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    district: str | None = None
    street: str | None = None
    source: Literal["coordinates", "text", "unknown"] = "unknown"


class Alternative(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    category: str
    confidence: float


class TicketClassified(Event):
    category: str
    confidence: float = Field(ge=0, le=1)
    alternatives: list[Alternative] = []
    urgency: Urgency = "general"
    urgency_cue: str | None = None
    place: Place = Place()
    language: Language | None = None
    duplicate_of: str | None = None
    model_version: str
    received_at: UtcDatetime


class TicketReview(Event):
    """A ticket an operator should look at (low confidence)."""

    category: str
    confidence: float
    alternatives: list[Alternative] = []
    model_version: str


class TicketDispatched(Event):
    department: str
    category: str
    district: str | None = None
    urgency: Urgency
    dispatch_due_at: UtcDatetime
    feedback_due_at: UtcDatetime
    reason: str
    attempt: int = 1
    received_at: UtcDatetime
    media_url: str | None = Field(default=None, description="The citizen's photo of the problem, if any")


DepartmentAction = Literal["accept", "reject", "resolve", "note"]
# A citizen's comment on their own request (Open311 POST servicerequestupdates), for the department.
CitizenAction = Literal["comment"]


class TicketUpdated(Event):
    """A department acted on a ticket (through intake's department API), or the citizen commented on it
    (action `comment`: `department` is then the one the ticket was with, and dispatch forwards it)."""

    department: str
    action: DepartmentAction | CitizenAction
    note: str | None = Field(default=None, max_length=4000)
    citizen_status: str | None = Field(
        default=None, description="comment: the request's state as the citizen's app says it (FixMyStreet)"
    )
    media_url: str | None = Field(default=None, description="comment: the citizen's photo, if any")


class SurveyAnswered(Event):
    resolved: bool
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=4000)
    survey_round: int | None = Field(
        default=None, ge=1, description="Which resolution was surveyed: 1, then n+1 after the n-th reopening"
    )


class SurveyRound(BaseModel):
    """One resolution of a ticket and what the citizen said about it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    survey_round: int
    department: str | None = None
    resolved_at: UtcDatetime | None = None
    answered_at: UtcDatetime
    resolved: bool
    satisfaction: int | None = None
    comment: str | None = None


class TicketReopened(Event):
    reason: str
    reopen_count: int = 1
    department: str | None = Field(default=None, description="The department whose resolution was refused")
    supervision: bool = Field(default=False, description="Reopened often enough to be flagged for 督办")
    history: list[SurveyRound] = Field(
        default=[], description="Every surveyed resolution so far, oldest first"
    )


class TicketRerouted(Event):
    """An operator sends a ticket to another department (the router got it wrong): dispatch moves it
    and learns that its previous department was the wrong one for this category and district."""

    operator: str
    department: str | None = Field(
        description="where to; none: an operator corrected the category and dispatch routes it again"
    )
    category: str | None = Field(default=None, description="the category an operator corrected it to")
    reason: str | None = Field(default=None, max_length=1000)


class TicketEscalated(Event):
    department: str | None
    reason: str
    overdue_since: UtcDatetime


class HotspotAlert(Event):
    """ticket_id is the id of the alert's episode (a series key), not of one ticket."""

    category: str
    district: str | None
    count: int
    expected: float
    probability: float
    example_tickets: list[str] = []
    window_hours: int | None = Field(default=None, description="The window (hours) whose count broke out")
    episode_start: UtcDatetime | None = Field(default=None, description="The hour the episode began")


ProblemStatus = Literal["open", "actioned", "resolved", "evaluated", "reopened"]
Verdict = Literal["worked", "no effect", "too early"]


class ProblemEvent(Event):
    """ticket_id is the problem's id: one problem (a place and topic, or a surging series) many tickets
    share."""

    key: str = Field(description="place key and category (estate:X|category), or series:category|district")
    category: str
    district: str | None = None
    place: str | None = None
    label: str
    status: ProblemStatus
    ticket_ids: list[str] = Field(default=[], description="Member tickets (the latest 50)")
    tickets: int = Field(default=0, description="How many tickets the problem holds")


class ProblemDetected(ProblemEvent):
    evidence: str = Field(description="Why it is a problem: repeats of one place and topic, or a surge")


class ProblemActioned(ProblemEvent):
    proactive_ticket_id: str
    by: str = Field(description="policy:<rule>, or the supervisor who acted")
    round: int = Field(default=1, ge=1, description="1, then n+1 after the problem reopened")


class ProblemEvaluated(ProblemEvent):
    round: int = 1
    proactive_ticket_id: str
    days: int = Field(description="Days after the resolution that were compared")
    expected: float = Field(
        description="Calls the forecast fitted before the action expected, control-adjusted"
    )
    expected_lower: float
    expected_upper: float
    observed: int
    avoided: float
    control_ratio: float = Field(description="Untreated comparable series: observed / their own forecast")
    verdict: Verdict


STREAM_EVENTS: dict[str, type[Event]] = {
    streams.RECEIVED: TicketReceived,
    streams.CLASSIFIED: TicketClassified,
    streams.REVIEW: TicketReview,
    streams.DISPATCHED: TicketDispatched,
    streams.UPDATED: TicketUpdated,
    streams.REOPENED: TicketReopened,
    streams.REROUTED: TicketRerouted,
    streams.ESCALATED: TicketEscalated,
    streams.SURVEYS_ANSWERED: SurveyAnswered,
    streams.HOTSPOTS: HotspotAlert,
    streams.PROBLEMS_DETECTED: ProblemDetected,
    streams.PROBLEMS_ACTIONED: ProblemActioned,
    streams.PROBLEMS_EVALUATED: ProblemEvaluated,
}
