"""Twilio form posts, signed by the official `twilio` package's RequestValidator (so we agree with Twilio)."""

from __future__ import annotations

import hashlib
import json
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


async def test_another_media_type_is_415(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "text/plain"}
    resp = await client.post("/v1/webhooks/twilio", content=b"CallSid=1", headers=headers)
    assert resp.status_code == 415


def json_callback(body: bytes, token: str = TOKEN, **headers: str) -> tuple[str, dict[str, str]]:
    """What Twilio sends for a JSON callback: the body's SHA-256 in the URL, the URL alone signed."""
    path = f"/v1/webhooks/twilio?bodySHA256={hashlib.sha256(body).hexdigest()}"
    algorithm = headers.get("x-twilio-webhooks-signature-settings", "").partition("algorithm=")[2] or None
    signature = RequestValidator(token).compute_signature(PUBLIC + path, {}, algorithm)
    assert RequestValidator(token).validate(PUBLIC + path, body.decode(), signature, algorithm)
    return path, {"content-type": "application/json", "x-twilio-signature": signature, **headers}


async def test_a_json_callback_vouched_for_by_bodysha256_becomes_a_ticket(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    body = json.dumps(form(), ensure_ascii=False).encode()
    path, headers = json_callback(body)
    resp = await client.post(path, content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    assert decode(fields, TicketReceived).text == "路灯坏了三天了"


async def test_a_json_body_that_does_not_match_its_bodysha256_is_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    body = json.dumps(form()).encode()
    path, headers = json_callback(body)
    tampered = json.dumps(form(Digits="9")).encode()
    unhashed = path.split("?")[0]
    for url, content in ((path, tampered), (unhashed, body)):
        resp = await client.post(url, content=content, headers=headers)
        assert resp.status_code == 401, url
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_a_shared_key_may_sign_with_hmac_sha256(client: httpx.AsyncClient) -> None:
    settings = {"x-twilio-webhooks-signature-settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    body = json.dumps(form()).encode()
    path, headers = json_callback(body, **settings)
    assert (await client.post(path, content=body, headers=headers)).status_code == 202
    unknown = {**headers, "x-twilio-webhooks-signature-settings": "key=k,algorithm=HMAC_MD5"}
    assert (await client.post(path, content=body, headers=unknown)).status_code == 401


async def test_a_signature_over_the_url_with_its_default_port_is_accepted(client: httpx.AsyncClient) -> None:
    params = form()
    path = "/v1/webhooks/twilio"
    signature = RequestValidator(TOKEN).compute_signature("https://hotline.example.org:443" + path, params)
    resp = await client.post(
        path,
        content=urlencode(params).encode(),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
    )
    assert resp.status_code == 202
