"""What callers post to intake: one pydantic model per channel, validated before anything is stored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Location, UtcDatetime

MAX_TEXT = 20_000  # TicketReceived.text


class TelephonyCall(BaseModel):
    """A finished call, posted by the call centre's platform."""

    model_config = ConfigDict(extra="ignore")

    call_id: str = Field(min_length=1, max_length=128)
    caller: str | None = Field(
        default=None, max_length=32, description="The caller's number; never stored raw"
    )
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    transcript: str | None = Field(default=None, max_length=20_000)
    agent_notes: str | None = Field(default=None, max_length=20_000)
    ivr_choice: str | None = Field(default=None, max_length=64)
    location: Location | None = None
    language: Literal["zh", "en"] | None = None

    @field_validator("location")
    @classmethod
    def _whole_coordinates(cls, value: Location | None) -> Location | None:
        if value is not None and (value.lat is None) != (value.lon is None):
            raise ValueError("lat and lon go together")
        return value

    @model_validator(mode="after")
    def _has_text(self) -> TelephonyCall:
        if not (self.transcript or "").strip() and not (self.agent_notes or "").strip():
            raise ValueError("one of transcript or agent_notes is required")
        if len(self.text()) > MAX_TEXT:
            raise ValueError(f"transcript and agent_notes together exceed {MAX_TEXT} characters")
        return self

    def handle_seconds(self) -> float | None:
        """The call's length from its start and end, if both are given and make sense (under a day)."""
        if self.started_at is None or self.ended_at is None:
            return None
        seconds = (self.ended_at - self.started_at).total_seconds()
        return seconds if 0 <= seconds < 86_400 else None

    def text(self) -> str:
        parts = [p.strip() for p in (self.agent_notes, self.transcript) if p and p.strip()]
        return "\n".join(parts)
