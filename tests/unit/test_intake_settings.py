"""Intake and evaluation refuse, at start, credentials that would let anyone sign: empty secrets, a trivial
caller key, and (when a deployment requires production credentials) the public development ones."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.evaluation.app import EvaluationSettings
from services.intake.credentials import token_hash
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


PRODUCTION = {
    "webhook_secrets": ["whsec_cHJvZHVjdGlvbi13ZWJob29rLXNlY3JldA=="],
    "survey_webhook_secrets": ["whsec_cHJvZHVjdGlvbi1zdXJ2ZXktc2VjcmV0"],
    "twilio_auth_tokens": ["production-twilio-token"],
    "caller_hash_key": "production-caller-hash-key",
    "department_tokens": {"water": [token_hash("water-token")]},
    "open311_api_keys": {"app": [token_hash("app-key")]},
    "operator_tokens": {"ops": [token_hash("ops-token")]},
    "supervisor_tokens": {"office": [token_hash("office-token")]},
}


def test_when_production_credentials_are_required_each_development_one_left_stops_the_start() -> None:
    assert IntakeSettings(require_production_credentials=True, **PRODUCTION).dev_credentials_in_use() == []
    for name in PRODUCTION:
        rest = {k: v for k, v in PRODUCTION.items() if k != name}
        with pytest.raises(ValidationError, match=name) as refused:
            IntakeSettings(require_production_credentials=True, **rest)
        assert "production-" not in str(refused.value), "the other credentials are not echoed"
    # Without the flag (make run, the tests) the development credentials only draw a warning.
    assert len(IntakeSettings().dev_credentials_in_use()) == len(PRODUCTION)


def test_evaluation_refuses_the_development_survey_secret_only_when_it_would_sign_requests() -> None:
    EvaluationSettings(require_production_credentials=True)  # no gateway: the secret is never used
    with pytest.raises(ValidationError, match="survey_secret"):
        EvaluationSettings(require_production_credentials=True, survey_gateway_url="https://sms.example.org")
    EvaluationSettings(
        require_production_credentials=True,
        survey_gateway_url="https://sms.example.org",
        survey_secret="whsec_cHJvZHVjdGlvbi1nYXRld2F5",
    )
