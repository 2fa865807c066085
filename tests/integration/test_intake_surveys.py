"""Survey answers: signed, one per ticket and survey, the Chinese callback words understood."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from shared import streams
from shared.codec import decode
from shared.events import SurveyAnswered
from shared.store import TicketStore
from tests.integration.intake_support import SECRET, SURVEY_SECRET, intake_client, new_ticket, post_signed

pytestmark = pytest.mark.redis
PATH = "/v1/webhooks/survey"


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url) as c:
        yield c


def answer(ticket_id: str, **over: object) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "resolved": True, "satisfaction": 5, **over}).encode()


async def test_an_answer_becomes_one_event_and_a_history_entry(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    ticket_id = await new_ticket(client, "call-s1")
    resp = await post_signed(
        client, PATH, answer(ticket_id, satisfaction="基本满意", comment="修好了"), "s1", SURVEY_SECRET
    )
    assert resp.status_code == 202, resp.text
    [(_, fields)] = await redis.xrange(streams.SURVEYS_ANSWERED)
    event = decode(fields, SurveyAnswered)
    assert (event.ticket_id, event.resolved, event.satisfaction, event.comment) == (
        ticket_id,
        True,
        4,
        "修好了",
    )
    assert event.event_id == resp.json()["event_id"]
    assert (await TicketStore(redis).history(ticket_id))[-1]["event"] == "survey_answered"


@pytest.mark.parametrize(
    ("word", "score"), [("满意", 5), ("基本满意", 4), ("不满意", 2), (3, 3), (None, None)]
)
async def test_satisfaction_words_map_to_scores(
    client: httpx.AsyncClient, redis: Redis, word: object, score: int | None
) -> None:
    ticket_id = await new_ticket(client, "call-w")
    body = answer(ticket_id, satisfaction=word, resolved="否")
    assert (await post_signed(client, PATH, body, "w", SURVEY_SECRET)).status_code == 202
    [(_, fields)] = await redis.xrange(streams.SURVEYS_ANSWERED)
    event = decode(fields, SurveyAnswered)
    assert (event.satisfaction, event.resolved) == (score, False)


async def test_one_answer_per_ticket_and_survey(client: httpx.AsyncClient, redis: Redis) -> None:
    ticket_id = await new_ticket(client, "call-s2")
    first = await post_signed(client, PATH, answer(ticket_id), "a1", SURVEY_SECRET)
    retry = await post_signed(client, PATH, answer(ticket_id), "a1", SURVEY_SECRET)
    second = await post_signed(client, PATH, answer(ticket_id, satisfaction=1), "a2", SURVEY_SECRET)
    after_reopen = await post_signed(client, PATH, answer(ticket_id, survey_id="2"), "a3", SURVEY_SECRET)
    assert [r.json()["duplicate"] for r in (first, retry, second, after_reopen)] == [False, True, True, False]
    assert first.json()["event_id"] == retry.json()["event_id"] == second.json()["event_id"]
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 2


@pytest.mark.parametrize(
    ("body", "secret", "status"),
    [
        (answer("T-nope"), SURVEY_SECRET, 404),
        (answer("x", satisfaction=7), SURVEY_SECRET, 422),
        (answer("x", satisfaction="很好"), SURVEY_SECRET, 422),
        (answer("x", resolved="maybe"), SURVEY_SECRET, 422),
        (answer("x"), SECRET, 401),
    ],
)
async def test_bad_answers_are_refused_precisely(
    client: httpx.AsyncClient, redis: Redis, body: bytes, secret: str, status: int
) -> None:
    assert (await post_signed(client, PATH, body, "bad", secret)).status_code == status
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 0
