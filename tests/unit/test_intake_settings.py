"""Intake refuses, at start, credentials that would let anyone sign: empty secrets, a trivial caller key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.settings import IntakeSettings


@pytest.mark.parametrize(
    "given",
    [
        {"webhook_secrets": ["whsec_"]},  # base64 of nothing: an HMAC with an empty key
        {"webhook_secrets": [""]},
        {"survey_webhook_secrets": ["whsec_"]},
        {"twilio_auth_tokens": [""]},
        {"caller_hash_key": ""},
        {"caller_hash_key": "short"},
    ],
)
def test_empty_or_trivial_credentials_are_refused(given: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IntakeSettings(**given)


def test_a_refused_caller_key_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as refused:
        IntakeSettings(caller_hash_key="tooShortKey1")
    assert "tooShortKey1" not in str(refused.value)
