"""Personal data said or typed in free text never reaches Redis, a log or an answer: phone numbers, ID-card
numbers and e-mail addresses are posted through every channel intake has, then every key, stream entry,
log line and response is searched for them."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import httpx
import pytest
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator

from services.intake.settings import (
    DEV_OPEN311_KEY,
    DEV_OPERATOR_TOKEN,
    DEV_SUPERVISOR_TOKEN,
    dev_department_token,
)
from shared import streams
from shared.codec import decode
from shared.events import TicketReceived
from shared.pii import phone_ref
from shared.store import TicketStore, keys
from shared.surveys import ROUND_FIELD
from tests.integration.intake_support import SURVEY_SECRET, call, dispatch_to, intake_client, post_signed
from tests.integration.test_supervisors import seed as seed_problem

pytestmark = pytest.mark.redis
TWILIO = "twilio-test-auth-token"
KEY = "pii-test-caller-hash-key"
RAW = {
    "mobile": "13700003333",
    "spaced mobile": "+86 158 6666 7777",
    "dashed mobile": "139-2222-4444",
    "landline": "010-87654321",
    "bracketed landline": "(0755)8888 9999",
    "id card": "11010519491231002X",
    "old id card": "110105491231002",
    "e-mail": "zhang.san@example.com",
}
# The digits alone too: a number stored with its separators stripped is still the number.
NEEDLES = set(RAW.values()) | {d for v in RAW.values() if len(d := "".join(filter(str.isdigit, v))) > 6}


def said(channel: str) -> str:
    return f"{channel}: 我的电话是{RAW['mobile']}，来电人要求回访 {RAW['spaced mobile']}，" + "，".join(
        f"{name} {value}" for name, value in RAW.items() if name not in ("mobile", "spaced mobile")
    )


async def everything_in(redis: Redis) -> str:
    """Every key's name and value, every stream entry, as one text."""
    dump: list[str] = []
    async for raw in redis.scan_iter(count=1000):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        value: object
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            value = kind
        dump.append(f"{key} {_text(value)}")
    return "\n".join(dump)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return " ".join(f"{_text(k)}={_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return " ".join(_text(v) for v in value)
    return str(value)


async def test_personal_data_in_every_free_text_is_masked_before_anything_is_stored(
    redis: Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []
    async with intake_client(redis_url, twilio_auth_tokens=[TWILIO], caller_hash_key=KEY) as client:
        body = call("pii-call", transcript=said("transcript"), agent_notes=said("agent notes"))
        answers.append(await post_signed(client, "/v1/webhooks/telephony", body, webhook_id="msg_pii"))
        phoned = answers[-1].json()["ticket_id"]

        form = {"CallSid": "CApii", "From": "+8613800001111", "SpeechResult": said("twilio"), "Digits": "1"}
        signature = RequestValidator(TWILIO).compute_signature(
            "https://hotline.example.org/v1/webhooks/twilio", form
        )
        answers.append(
            await client.post(
                "/v1/webhooks/twilio",
                content=urlencode(form).encode(),
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "x-twilio-signature": signature,
                },
            )
        )
        report = {
            "api_key": DEV_OPEN311_KEY,
            "service_code": "utilities",
            "address_string": f"幸福路 8 号 联系 {RAW['mobile']}",
            "description": said("open311"),
            "attribute[supply]": "water",
        }
        answers.append(await client.post("/open311/v2/requests.json", data=report))
        reported = answers[-1].json()[0]["service_request_id"]
        update = {
            "api_key": DEV_OPEN311_KEY,
            "service_request_id": reported,
            "update_id": "fms-1",
            "status": "OPEN",
            "description": said("open311 update"),
        }
        answers.append(await client.post("/open311/v2/servicerequestupdates.json", data=update))

        await dispatch_to(redis, phoned, "water_utility")
        department = {"authorization": f"Bearer {dev_department_token('water_utility')}"}
        note = {"note": said("department note")}
        path = f"/v1/departments/water_utility/tickets/{phoned}/note"
        answers.append(await client.post(path, json=note, headers=department))
        operator = {"authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
        fix = {"category": "utilities", "comment": said("operator comment")}
        answers.append(
            await client.post(f"/v1/operators/tickets/{phoned}/category", json=fix, headers=operator)
        )
        move = {"department": "housing_bureau", "reason": said("operator reason")}
        answers.append(
            await client.post(f"/v1/operators/tickets/{phoned}/route", json=move, headers=operator)
        )
        await redis.hset(keys.ticket(phoned), ROUND_FIELD, "1")
        survey = json.dumps(
            {"ticket_id": phoned, "resolved": False, "satisfaction": 2, "comment": said("survey")}
        ).encode()
        answers.append(await post_signed(client, "/v1/webhooks/survey", survey, "survey-pii", SURVEY_SECRET))

        await seed_problem(redis)
        supervisor = {"authorization": f"Bearer {DEV_SUPERVISOR_TOKEN}"}
        order = {"note": said("supervisor note")}
        answers.append(await client.post("/v1/supervisors/problems/p1/act", json=order, headers=supervisor))

        assert [a.status_code for a in answers] == [202, 202, 201, 200, 202, 202, 202, 202, 202], [
            a.text for a in answers
        ]
        answers.append(await client.get("/v1/departments/water_utility/tickets", headers=department))
        answers.append(await client.get("/open311/v2/requests.json", params={"service_request_id": reported}))
        answers.append(await client.get("/open311/v2/servicerequestupdates.json"))

    stored = await everything_in(redis)
    seen = {
        "redis": stored,
        "logs": "\n".join(r.getMessage() for r in caplog.records),
        "answers": "\n".join(a.text for a in answers),
    }
    for where, text in seen.items():
        leaks = sorted(n for n in NEEDLES if n in text)
        assert not leaks, f"{where} holds {leaks}"
    for token in ("[电话]", "[身份证]", "[邮箱]"):
        assert token in stored

    # The call's text keeps its meaning, and the numbers given for a callback are kept as keyed hashes.
    [(_, fields)] = await redis.xrange(streams.RECEIVED, count=1)
    event = decode(fields, TicketReceived)
    assert event.text.startswith("agent notes: 我的电话是[电话]，来电人要求回访 [电话]")
    wanted = [phone_ref(RAW[n], KEY.encode()) for n in ("mobile", "spaced mobile", "dashed mobile")]
    assert [c.hash for c in event.contacts or []][:3] == [w.hash for w in wanted]
    ticket = await TicketStore(redis).get(phoned)
    assert ticket is not None and phone_ref("0086-137-0000-3333", KEY.encode()).hash in str(
        ticket.model_extra
    )
