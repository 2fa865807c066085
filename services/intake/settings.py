"""Intake's settings (env `HOTLINE_*`). The development credentials exist so `make run` works out of the
box; every one of them must be replaced in production (intake logs a warning while any is in use)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from services.intake.credentials import token_hash
from services.intake.public_place import Shown
from shared.settings import ProxiedSettings, refuse_dev_credentials
from shared.standard_webhooks import secret_bytes

DEV_SECRET = "whsec_aG90bGluZS1kZXZlbG9wbWVudC1zZWNyZXQ="  # "hotline-development-secret"
DEV_SURVEY_SECRET = (
    "whsec_aG90bGluZS1kZXZlbG9wbWVudC1zdXJ2ZXktc2VjcmV0"  # "hotline-development-survey-secret"
)
DEV_TWILIO_TOKEN = "hotline-development-twilio-token"
DEV_OPEN311_KEY = "hotline-dev-open311"
DEV_OPERATOR_TOKEN = "hotline-dev-operator"
DEV_SUPERVISOR_TOKEN = "hotline-dev-supervisor"
DEV_CALLER_KEY = "hotline-development-caller-key"


def dev_department_token(department: str) -> str:
    """The development bearer token of a department (for `make run` only): `hotline-dev-<id>`."""
    return f"hotline-dev-{department}"


def _hex_hashes(value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    for name, hashes in (value or {}).items():
        for h in hashes:
            if not re.fullmatch(r"[0-9a-f]{64}", h):
                raise ValueError(f"{name}: tokens are configured as SHA-256 hex digests, not in clear")
    return value


TokenHashes = Annotated[dict[str, list[str]], AfterValidator(_hex_hashes)]


def _webhook_secrets(value: list[str]) -> list[str]:
    for secret in value:
        try:
            key = secret_bytes(secret)
        except ValueError:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
        if not key:  # an HMAC with an empty key: anyone could sign
            raise ValueError("a webhook secret must not be empty")
    return value


WebhookSecrets = Annotated[list[str], AfterValidator(_webhook_secrets)]


class IntakeSettings(ProxiedSettings):
    port: int = 8080
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    caller_hash_key: str = Field(
        default=DEV_CALLER_KEY,
        min_length=16,
        description="Key of the HMAC that replaces callers' numbers: numbers are few enough to guess, so only"
        " the key's secrecy protects them",
    )
    webhook_secrets: WebhookSecrets = Field(
        default=[DEV_SECRET], min_length=1, description="Standard Webhooks secrets of telephony (rotation)"
    )
    survey_webhook_secrets: WebhookSecrets = Field(
        default=[DEV_SURVEY_SECRET],
        min_length=1,
        description="Standard Webhooks secrets of the surveys",
    )
    twilio_auth_tokens: list[Annotated[str, Field(min_length=1)]] = Field(
        default=[DEV_TWILIO_TOKEN], min_length=1
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        description="The URL the outside world calls intake by; Twilio signs it, so set it behind an ingress",
    )
    open311_api_keys: TokenHashes = Field(
        default={"dev-app": [token_hash(DEV_OPEN311_KEY)]}, description="client name -> SHA-256 of its keys"
    )
    department_tokens: TokenHashes | None = Field(
        default=None,
        description="department id -> SHA-256 of its bearer tokens; unset: development tokens for every"
        " department of the routing table",
    )
    operator_tokens: TokenHashes = Field(
        default={"dev-operator": [token_hash(DEV_OPERATOR_TOKEN)]},
        description="operator name -> SHA-256 of their bearer tokens",
    )
    supervisor_tokens: TokenHashes = Field(
        default={"dev-supervisor": [token_hash(DEV_SUPERVISOR_TOKEN)]},
        description="supervisor (supervision office) name -> SHA-256 of their bearer tokens",
    )
    rate_limits: dict[str, int] = Field(
        default={
            "webhook": 12_000,
            "open311_write": 600,
            "open311_read": 1_200,
            "department": 1_200,
            "operator": 1_200,
        },
        description="requests per window per source: webhook (client IP), open311_write (api key),"
        " open311_read (client IP), department (department), operator (operator)",
    )
    rate_window_seconds: int = Field(default=60, ge=1)
    auth_failure_limit: int = Field(
        default=30,
        ge=1,
        description="failed authentications (401, a wrong Open311 api_key) per client and window before"
        " the client gets 429 on every request until the window ends",
    )
    auth_failure_window_seconds: int = Field(default=300, ge=1)
    timezone: str = Field(default="UTC", description="The zone Open311 datetimes are written in")
    open311_public_location: list[Shown] = Field(
        default=["street", "rounded"],
        description="What Open311 publishes of where a ticket from another channel (a phone call) is: the"
        " street without its house number, coordinates rounded to about 500 m, both, or nothing ([]);"
        " Open311's own requests show what the citizen sent",
    )
    open311_contact: str = "12345 hotline, https://example.org/12345"

    @model_validator(mode="after")
    def _production_credentials(self) -> IntakeSettings:
        refuse_dev_credentials(self, self.dev_credentials_in_use())
        return self

    def dev_credentials_in_use(self) -> list[str]:
        found = [
            name
            for name, in_use in (
                ("webhook_secrets", DEV_SECRET in self.webhook_secrets),
                ("survey_webhook_secrets", DEV_SURVEY_SECRET in self.survey_webhook_secrets),
                ("twilio_auth_tokens", DEV_TWILIO_TOKEN in self.twilio_auth_tokens),
                ("caller_hash_key", self.caller_hash_key == DEV_CALLER_KEY),
                ("department_tokens", self.department_tokens is None),
                ("open311_api_keys", _holds(self.open311_api_keys, DEV_OPEN311_KEY)),
                ("operator_tokens", _holds(self.operator_tokens, DEV_OPERATOR_TOKEN)),
                ("supervisor_tokens", _holds(self.supervisor_tokens, DEV_SUPERVISOR_TOKEN)),
            )
            if in_use
        ]
        return found


def _holds(hashes: dict[str, list[str]], token: str) -> bool:
    return any(token_hash(token) in hs for hs in hashes.values())
