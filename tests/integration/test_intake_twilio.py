"""Twilio form posts, signed by the official `twilio` package's RequestValidator (so we agree with Twilio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator

from shared import streams
from shared.codec import decode
from shared.events import TicketReceived
from shared.store import TicketStore
from tests.integration.intake_support import intake_client

pytestmark = pytest.mark.redis
TOKEN = "twilio-test-auth-token"
PUBLIC = "https://hotline.example.org"


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url, twilio_auth_tokens=["old-token", TOKEN]) as c:
        yield c


def form(**over: str) -> dict[str, str]:
    return {
        "CallSid": "CA0123456789abcdef0123456789abcdef",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+8613800001111",
        "To": "+8612345",
        "CallStatus": "completed",
        "SpeechResult": "路灯坏了三天了",
        "Digits": "2",
        "Language": "zh-CN",
        **over,
    }


async def post(
    client: httpx.AsyncClient, params: dict[str, str], query: str = "", token: str = TOKEN
) -> httpx.Response:
    path = "/v1/webhooks/twilio" + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return await client.post(
        path,
        content=urlencode(params).encode(),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
    )


async def test_a_signed_callback_becomes_a_ticket_with_the_caller_hashed(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    resp = await post(client, form(), query="source=ivr")
    assert resp.status_code == 202, resp.text
    ticket_id = resp.json()["ticket_id"]
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    event = decode(fields, TicketReceived)
    assert (event.channel, event.text, event.ivr_choice, event.language) == (
        "twilio",
        "路灯坏了三天了",
        "2",
        "zh",
    )
    assert event.caller is not None and event.caller.masked.endswith("1111")
    assert b"13800001111" not in fields[b"__data__"]
    assert (await TicketStore(redis).get_or_raise(ticket_id)).channel == "twilio"


async def test_every_callback_of_one_call_lands_on_one_ticket(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    first = await post(client, form())
    transcription = await post(client, form(SpeechResult="", TranscriptionText="路灯坏了", CallStatus="done"))
    assert first.json()["ticket_id"] == transcription.json()["ticket_id"]
    assert transcription.json()["duplicate"] is True
    assert await redis.xlen(streams.RECEIVED) == 1


async def test_the_second_configured_token_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await post(client, form(), token="old-token")).status_code == 202


@pytest.mark.parametrize(
    "tamper",
    ["token", "param", "url", "missing"],
)
async def test_a_bad_signature_is_refused(client: httpx.AsyncClient, redis: Redis, tamper: str) -> None:
    params = form()
    path = "/v1/webhooks/twilio"
    signed_url = PUBLIC + path + ("?x=1" if tamper == "url" else "")
    signature = RequestValidator("wrong" if tamper == "token" else TOKEN).compute_signature(
        signed_url, params
    )
    sent = {**params, "Digits": "9"} if tamper == "param" else params
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if tamper != "missing":
        headers["x-twilio-signature"] = signature
    resp = await client.post(path, content=urlencode(sent).encode(), headers=headers)
    assert resp.status_code == 401
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_a_callback_without_text_or_call_sid_is_422(client: httpx.AsyncClient) -> None:
    no_text = await post(client, form(SpeechResult=""))
    assert no_text.status_code == 422
    params = form()
    del params["CallSid"]
    no_sid = await post(client, params)
    assert [f["field"] for f in no_sid.json()["error"]["fields"]] == ["CallSid"]


async def test_json_is_not_a_twilio_form(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/webhooks/twilio", json=form())
    assert resp.status_code == 415
