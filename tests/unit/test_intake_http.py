"""Intake's HTTP plumbing (capped bodies, problem answers, metrics) on hand-built ASGI requests."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

from services.intake.http import HttpError, IntakeMetrics, instrumented, read_body, require_content_type


def _request(*messages: dict[str, Any]) -> Request:
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"1000")]}
    return Request(scope, receive)


async def test_a_client_that_hangs_up_mid_body_is_not_counted_as_a_server_error() -> None:
    """An abandoned upload (a phone losing its network) is the client's doing: counted apart, not as
    the 5xx that HotlineIntakeErrors pages on, and not logged as an unhandled error."""
    registry = CollectorRegistry()
    metrics = IntakeMetrics(registry)

    async def endpoint(request: Request) -> Response:
        await read_body(request, 4096)
        return Response(status_code=202)

    handler = instrumented("telephony", metrics, endpoint)
    response = await handler(
        _request(
            {"type": "http.request", "body": b'{"call_id":', "more_body": True}, {"type": "http.disconnect"}
        )
    )
    assert response.status_code == 499
    assert (
        registry.get_sample_value("hotline_intake_requests_total", {"route": "telephony", "status": "499"})
        == 1
    )
    assert (
        registry.get_sample_value("hotline_intake_requests_total", {"route": "telephony", "status": "500"})
        is None
    )


def _typed(content_type: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", content_type.encode())],
    }
    return Request(scope)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=UTF-8",
        'application/json;charset="utf-8"',
        "application/json; charset=utf-8; profile=call",
        "application/json; profile=call; charset=utf8",
    ],
)
def test_a_utf8_charset_is_accepted_wherever_it_stands_among_the_parameters(content_type: str) -> None:
    require_content_type(_typed(content_type), "application/json")


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=latin-1", "application/json; profile=x; charset=gbk"]
)
def test_another_charset_is_a_415(content_type: str) -> None:
    with pytest.raises(HttpError) as refused:
        require_content_type(_typed(content_type), "application/json")
    assert refused.value.status == 415


async def test_a_compressed_body_is_a_415_naming_the_encoding_not_invalid_json() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"\x1f\x8b\x08\x00", "more_body": False}

    headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)
    with pytest.raises(HttpError) as refused:
        await read_body(request, 4096)
    assert refused.value.status == 415 and "Content-Encoding" in refused.value.message
