"""Twilio-compatible form posts: `X-Twilio-Signature` over the public URL and the sorted form parameters.

Twilio sends several callbacks per call (gather result, transcription, status); the ticket is keyed on
CallSid, so every callback of one call lands on one ticket and only the first one carrying text makes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.deps import Deps, accepted
from services.intake.http import (
    HttpError,
    client_ip,
    instrumented,
    parse_fields,
    parse_form,
    read_body,
    require_content_type,
)
from services.intake.models import MAX_TEXT
from services.intake.openapi import Operation, Param, TicketAccepted

PATH = "/v1/webhooks/twilio"
FORM = "application/x-www-form-urlencoded"


class TwilioCall(BaseModel):
    """The fields of Twilio's voice callbacks that a ticket needs; the rest are ignored."""

    model_config = ConfigDict(extra="ignore")

    CallSid: str = Field(min_length=1, max_length=64)
    From: str | None = Field(default=None, max_length=64, description="The caller; never stored raw")
    SpeechResult: str | None = Field(default=None, max_length=20_000)
    TranscriptionText: str | None = Field(default=None, max_length=20_000)
    Digits: str | None = Field(default=None, max_length=64)
    Language: str | None = Field(default=None, max_length=16, description="e.g. zh-CN, en-US")

    @model_validator(mode="after")
    def _has_text(self) -> TwilioCall:
        if not (self.SpeechResult or "").strip() and not (self.TranscriptionText or "").strip():
            raise ValueError("one of SpeechResult or TranscriptionText is required")
        if len(self.text()) > MAX_TEXT:
            raise ValueError(f"SpeechResult and TranscriptionText together exceed {MAX_TEXT} characters")
        return self

    def text(self) -> str:
        return "\n".join(p.strip() for p in (self.SpeechResult, self.TranscriptionText) if p and p.strip())

    def language(self) -> str | None:
        prefix = (self.Language or "").split("-", 1)[0].lower()
        return prefix if prefix in ("zh", "en") else None


def signature(token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """Twilio's algorithm: HMAC-SHA1 over the URL then each name+value, names and values sorted."""
    content = url
    for name in sorted({n for n, _ in params}):
        for value in sorted({v for n, v in params if n == name}):
            content += name + value
    mac = hmac.new(token.encode(), content.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def verify(tokens: Sequence[str], url: str, params: Sequence[tuple[str, str]], offered: str | None) -> None:
    if not offered:
        raise HttpError(401, "bad_signature", "missing X-Twilio-Signature header")
    if not any(hmac.compare_digest(signature(t, url, params), offered) for t in tokens):
        raise HttpError(401, "bad_signature", "X-Twilio-Signature does not match")


OPERATIONS = [
    Operation(
        "post",
        PATH,
        "A Twilio voice callback (form post signed with X-Twilio-Signature); one ticket per CallSid",
        "webhooks",
        ok=202,
        body=TwilioCall,
        media=FORM,
        answer=TicketAccepted,
        params=(Param("X-Twilio-Signature", "header", "base64 HMAC-SHA1 of the URL and sorted parameters"),),
        errors=(400, 401, 415, 422),
    )
]


def routes(deps: Deps) -> list[Route]:
    settings = deps.settings
    base_url = settings.public_base_url.rstrip("/")

    async def twilio(request: Request) -> Response:
        require_content_type(request, FORM)
        params = parse_form(await read_body(request, settings.max_body_bytes))
        query = request.url.query
        url = base_url + request.url.path + (f"?{query}" if query else "")
        verify(settings.twilio_auth_tokens, url, params, request.headers.get("x-twilio-signature"))
        call = parse_fields(TwilioCall, dict(params))
        event = deps.received(
            "twilio",
            call.CallSid,
            text=call.text(),
            caller=call.From,
            language=call.language(),
            ivr_choice=call.Digits or None,
        )
        rate = deps.rate("webhook", client_ip(request))
        return accepted(await deps.accept(event, delivery_id=None, rate=rate))

    return [Route(PATH, instrumented("twilio", deps.metrics, twilio), methods=["POST"])]
