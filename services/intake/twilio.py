"""Twilio-compatible callbacks: `X-Twilio-Signature` over the public URL and the sorted form parameters.

Twilio sends several callbacks per call (gather result, transcription, status); the ticket is keyed on
CallSid, so every callback of one call lands on one ticket and only the first one carrying text makes it.
Signed as the official `twilio` package validates them: form posts, or JSON bodies whose SHA-256 rides in
the URL's `bodySHA256`; HMAC-SHA1 with the Auth Token, or the algorithm a shared key names in
`X-Twilio-Webhooks-Signature-Settings`; the URL with or without its default port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.deps import Deps, accepted
from services.intake.http import (
    HttpError,
    client_ip,
    instrumented,
    media_type,
    parse_fields,
    parse_form,
    parse_json,
    read_body,
    require_content_type,
)
from services.intake.models import MAX_TEXT
from services.intake.openapi import Operation, Param, TicketAccepted

PATH = "/v1/webhooks/twilio"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


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


ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def signature(token: str, url: str, params: Sequence[tuple[str, str]], algorithm: str = "HMAC_SHA1") -> str:
    """Twilio's algorithm: an HMAC over the URL then each name+value, names and values sorted."""
    content = url
    for name in sorted({n for n, _ in params}):
        for value in sorted({v for n, v in params if n == name}):
            content += name + value
    mac = hmac.new(token.encode(), content.encode(), ALGORITHMS[algorithm])
    return base64.b64encode(mac.digest()).decode()


def algorithm(settings_header: str | None) -> str:
    """The algorithm named by `X-Twilio-Webhooks-Signature-Settings` (`key=..,algorithm=..`); else SHA-1."""
    for part in (settings_header or "").split(","):
        name, found, value = part.partition("=")
        if found and name.strip() == "algorithm" and value.strip():
            named = value.strip().upper()
            if named not in ALGORITHMS:
                raise HttpError(401, "bad_signature", f"unsupported signature algorithm {value.strip()!r}")
            return named
    return "HMAC_SHA1"


def _with_and_without_port(url: str) -> tuple[str, str]:
    # Twilio signs the URL as configured, which may or may not spell out the default port.
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = 443 if parts.scheme == "https" else 80
    bare = parts._replace(netloc=host).geturl()
    return bare, parts._replace(netloc=f"{host}:{parts.port or default}").geturl()


def verify(
    tokens: Sequence[str],
    url: str,
    params: Sequence[tuple[str, str]],
    offered: str | None,
    algorithm: str = "HMAC_SHA1",
) -> None:
    if not offered:
        raise HttpError(401, "bad_signature", "missing X-Twilio-Signature header")
    variants = _with_and_without_port(url)
    for token in tokens:
        for variant in variants:
            if hmac.compare_digest(signature(token, variant, params, algorithm), offered):
                return
    raise HttpError(401, "bad_signature", "X-Twilio-Signature does not match")


def verify_body_hash(url: str, body: bytes) -> None:
    """A JSON callback is signed over the URL alone; the URL's `bodySHA256` vouches for the body."""
    claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0]
    if not claimed:
        raise HttpError(401, "bad_signature", "a JSON callback needs bodySHA256 in its URL")
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), claimed.lower()):
        raise HttpError(401, "bad_signature", "bodySHA256 does not match the body")


OPERATIONS = [
    Operation(
        "post",
        PATH,
        "A Twilio voice callback (a form post, or JSON with bodySHA256 in the URL, signed with "
        "X-Twilio-Signature); one ticket per CallSid",
        "webhooks",
        ok=202,
        body=TwilioCall,
        media=FORM,
        answer=TicketAccepted,
        params=(
            Param("X-Twilio-Signature", "header", "base64 HMAC of the URL and sorted parameters"),
            Param(
                "X-Twilio-Webhooks-Signature-Settings",
                "header",
                "key=<id>,algorithm=HMAC_SHA1|HMAC_SHA256 (shared-key signing); SHA-1 without it",
                required=False,
            ),
        ),
        errors=(400, 401, 415, 422),
    )
]


def routes(deps: Deps) -> list[Route]:
    settings = deps.settings
    base_url = settings.public_base_url.rstrip("/")

    async def twilio(request: Request) -> Response:
        require_content_type(request, FORM, JSON)
        body = await read_body(request, settings.max_body_bytes)
        query = request.url.query
        url = base_url + request.url.path + (f"?{query}" if query else "")
        signed_with = algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
        offered = request.headers.get("x-twilio-signature")
        if media_type(request) == JSON:
            verify(settings.twilio_auth_tokens, url, (), offered, signed_with)
            verify_body_hash(url, body)
            call = parse_json(TwilioCall, body)
        else:
            params = parse_form(body)
            verify(settings.twilio_auth_tokens, url, params, offered, signed_with)
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
