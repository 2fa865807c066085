"""Intake as a real process over real HTTP: no input makes it answer 5xx (schemathesis against its own
OpenAPI document, hypothesis payloads signed correctly on the webhook routes), and no caller number
reaches its logs, the events, the store or the metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis as sync_redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from twilio.request_validator import RequestValidator

from services.intake.settings import (
    DEV_OPEN311_KEY,
    DEV_OPERATOR_TOKEN,
    DEV_SECRET,
    DEV_SURVEY_SECRET,
    DEV_TWILIO_TOKEN,
)
from shared.standard_webhooks import signed_headers
from tools.embedded import free_port

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
NUMBER = "13912345678"
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)


@pytest.fixture(scope="module")
def intake(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of `python -m services.intake` with the development credentials."""
    port = free_port()
    log = tmp_path_factory.mktemp("intake") / "intake.log"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "HOTLINE_PORT": str(port),
        "HOTLINE_LOG_LEVEL": "DEBUG",
        "HOTLINE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
        # The fuzzing fails authentication on purpose, thousands of times from one address; the throttle
        # has its own tests (tests/integration/test_intake_auth_throttle.py).
        "HOTLINE_AUTH_FAILURE_LIMIT": "1000000",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.intake"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield url, log
    process.terminate()
    process.wait(30)


def test_no_documented_route_answers_5xx(intake: tuple[str, Path]) -> None:
    """Every operation of the served OpenAPI document, with valid and invalid generated requests."""
    schema = schemathesis.openapi.from_url(f"{intake[0]}/openapi.json")
    # An operator's token gets generated requests past authentication on the operator route.
    auth = {"authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=cases)
        def exercise(case: Any) -> None:
            response = case.call(headers=auth, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )

        exercise()
    assert failures == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
call_like = st.fixed_dictionaries(
    {},
    optional={
        "call_id": json_values | st.text(min_size=1, max_size=20),
        "caller": json_values,
        "transcript": json_values | st.text(max_size=60),
        "agent_notes": json_values,
        "started_at": json_values | st.datetimes().map(str),
        "location": json_values
        | st.fixed_dictionaries(
            {}, optional={"lat": json_values, "lon": json_values, "address": json_values}
        ),
        "language": json_values | st.sampled_from(["zh", "en"]),
        "ticket_id": json_values,
        "resolved": json_values | st.sampled_from(["是", "no"]),
        "satisfaction": json_values | st.sampled_from(["满意", "不满意"]),
    },
)
bodies = call_like.map(lambda d: json.dumps(d, ensure_ascii=False).encode()) | st.binary(max_size=200)


@FUZZ
@given(body=bodies, route=st.sampled_from(["telephony", "survey"]), n=st.integers(0, 10**9))
def test_signed_json_payloads_get_an_answer_never_a_5xx(
    intake: tuple[str, Path], body: bytes, route: str, n: int
) -> None:
    secret = DEV_SECRET if route == "telephony" else DEV_SURVEY_SECRET
    headers = {**signed_headers(secret, f"fuzz-{n}", body), "content-type": "application/json"}
    resp = httpx.post(f"{intake[0]}/v1/webhooks/{route}", content=body, headers=headers, timeout=10)
    assert resp.status_code in (202, 400, 404, 422), resp.text


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["CallSid", "From", "SpeechResult", "Digits", "Language", "x"]),
        st.text(max_size=30),
        max_size=6,
    )
)
def test_signed_twilio_forms_get_an_answer_never_a_5xx(
    intake: tuple[str, Path], params: dict[str, str]
) -> None:
    url = f"{intake[0]}/v1/webhooks/twilio"
    signature = RequestValidator(DEV_TWILIO_TOKEN).compute_signature(url, params)
    resp = httpx.post(
        url,
        content=urlencode(params).encode(),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
        timeout=10,
    )
    assert resp.status_code in (202, 400, 422), resp.text


def test_no_caller_number_in_logs_events_store_or_metrics(intake: tuple[str, Path], redis_url: str) -> None:
    url, log = intake
    formatted = "+86 139-1234-5678"
    body = json.dumps({"call_id": "privacy-1", "caller": formatted, "transcript": "路灯不亮"}).encode()
    posts = [
        ("telephony", body, DEV_SECRET),
        (
            "telephony",
            body,
            "whsec_d3Jvbmc=",
        ),  # refused: the number is in a request that is logged as refused
        ("telephony", json.dumps({"call_id": "p2", "caller": NUMBER * 4}).encode(), DEV_SECRET),  # 422
    ]
    for route, payload, secret in posts:
        headers = {**signed_headers(secret, f"p-{len(payload)}-{secret[-4:]}", payload)}
        httpx.post(
            f"{url}/v1/webhooks/{route}",
            content=payload,
            headers=headers | {"content-type": "application/json"},
        )
    twilio_params = {"CallSid": "CAprivacy", "From": f"+86{NUMBER}", "SpeechResult": "噪音扰民"}
    signature = RequestValidator(DEV_TWILIO_TOKEN).compute_signature(
        f"{url}/v1/webhooks/twilio", twilio_params
    )
    assert (
        httpx.post(
            f"{url}/v1/webhooks/twilio", data=twilio_params, headers={"x-twilio-signature": signature}
        ).status_code
        == 202
    )
    report = {
        "api_key": DEV_OPEN311_KEY,
        "service_code": "transport",
        "address_string": "Main St",
        "phone": NUMBER,
    }
    assert httpx.post(f"{url}/open311/v2/requests.json", data=report).status_code == 201
    metrics = httpx.get(f"{url}/metrics/").text

    client = sync_redis.Redis.from_url(redis_url)
    stored = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"stream":
            stored += [v for _, fields in client.xrange(key) for v in fields.values()]
        elif kind == b"hash":
            stored += list(client.hgetall(key).values())
        elif kind == b"list":
            stored += client.lrange(key, 0, -1)
        elif kind == b"string":
            stored.append(client.get(key))
        elif kind == b"zset":
            stored += client.zrange(key, 0, -1)
        stored.append(key)
    assert any(
        b"5678" in v for v in stored
    )  # the masked form is there, so the search looks in the right place
    for value in stored:
        assert NUMBER.encode() not in value.replace(b"-", b"").replace(b" ", b"")
    assert NUMBER not in metrics
    text = log.read_text(errors="replace")
    assert "refused credentials" in text  # the refusal was logged...
    assert NUMBER not in text.replace("-", "").replace(" ", "")  # ...without the number


def test_a_loopback_peer_cannot_choose_its_address_with_x_forwarded_for(
    intake: tuple[str, Path], redis_url: str
) -> None:
    """uvicorn's default trusts X-Forwarded-For from loopback; with no trusted proxy configured the header
    is ignored, so the per-IP limits count the real peer."""
    spoofed = "198.51.100.77"
    resp = httpx.get(
        f"{intake[0]}/open311/v2/services.json", headers={"x-forwarded-for": spoofed}, timeout=10
    )
    assert resp.status_code == 200
    client = sync_redis.Redis.from_url(redis_url)
    try:
        counted = {k.decode() for k in client.scan_iter(match="hotline:rate:open311_read:*")}
    finally:
        client.close()
    assert "hotline:rate:open311_read:127.0.0.1" in counted
    assert not any(spoofed in key for key in counted)
