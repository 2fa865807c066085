"""Survey answers: signed, one per survey round, the Chinese callback words understood.

Evaluation opens a survey round when a ticket is resolved (it writes the round on the ticket); these tests
open the round the same way, then answer it through intake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from shared import streams, surveys
from shared.codec import decode
from shared.events import SurveyAnswered
from shared.store import keys
from tests.integration.intake_support import SECRET, SURVEY_SECRET, intake_client, new_ticket, post_signed

pytestmark = pytest.mark.redis
PATH = "/v1/webhooks/survey"


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url) as c:
        yield c


async def surveyed_ticket(
    client: httpx.AsyncClient, redis: Redis, call_id: str, survey_round: int = 1
) -> str:
    ticket_id = await new_ticket(client, call_id)
    await open_round(redis, ticket_id, survey_round)
    return ticket_id


async def open_round(redis: Redis, ticket_id: str, survey_round: int) -> None:
    await redis.hset(keys.ticket(ticket_id), surveys.ROUND_FIELD, str(survey_round))


def answer(ticket_id: str, **over: object) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "resolved": True, "satisfaction": 5, **over}).encode()


async def test_an_answer_becomes_one_event(client: httpx.AsyncClient, redis: Redis) -> None:
    ticket_id = await surveyed_ticket(client, redis, "call-s1")
    resp = await post_signed(
        client, PATH, answer(ticket_id, satisfaction="基本满意", comment="修好了"), "s1", SURVEY_SECRET
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"ticket_id": ticket_id, "survey_round": 1, "duplicate": False}
    [(_, fields)] = await redis.xrange(streams.SURVEYS_ANSWERED)
    event = decode(fields, SurveyAnswered)
    assert (event.ticket_id, event.resolved, event.satisfaction, event.comment, event.survey_round) == (
        ticket_id,
        True,
        4,
        "修好了",
        1,
    )
    assert event.event_id == surveys.answered_event_id(ticket_id, 1)


@pytest.mark.parametrize(("word", "score"), [("满意", 5), ("基本满意", 4), ("不满意", 2), (3, 3)])
async def test_satisfaction_and_resolved_words_are_understood(
    client: httpx.AsyncClient, redis: Redis, word: object, score: int
) -> None:
    ticket_id = await surveyed_ticket(client, redis, "call-w")
    body = answer(ticket_id, satisfaction=word, resolved="否")
    assert (await post_signed(client, PATH, body, "w", SURVEY_SECRET)).status_code == 202
    [(_, fields)] = await redis.xrange(streams.SURVEYS_ANSWERED)
    event = decode(fields, SurveyAnswered)
    assert (event.satisfaction, event.resolved) == (score, False)


async def test_one_answer_per_survey_round(client: httpx.AsyncClient, redis: Redis) -> None:
    ticket_id = await surveyed_ticket(client, redis, "call-s2")
    first = await post_signed(client, PATH, answer(ticket_id), "a1", SURVEY_SECRET)
    retry = await post_signed(client, PATH, answer(ticket_id), "a1", SURVEY_SECRET)
    second = await post_signed(client, PATH, answer(ticket_id, satisfaction=1), "a2", SURVEY_SECRET)
    await open_round(redis, ticket_id, 2)  # reopened, resolved again: a new survey
    after_reopen = await post_signed(client, PATH, answer(ticket_id), "a3", SURVEY_SECRET)
    assert [r.json()["duplicate"] for r in (first, retry, second, after_reopen)] == [False, True, True, False]
    assert [r.json()["survey_round"] for r in (first, after_reopen)] == [1, 2]
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 2


async def test_no_answer_without_an_open_survey(client: httpx.AsyncClient, redis: Redis) -> None:
    ticket_id = await new_ticket(client, "call-s3")  # never resolved: no survey
    resp = await post_signed(client, PATH, answer(ticket_id), "n1", SURVEY_SECRET)
    assert (resp.status_code, resp.json()["error"]["code"]) == (409, "no_survey")
    await open_round(redis, ticket_id, 1)
    await redis.set(keys.survey_outcome(ticket_id, 1), surveys.EXPIRED)  # the window closed unanswered
    resp = await post_signed(client, PATH, answer(ticket_id), "n2", SURVEY_SECRET)
    assert (resp.status_code, resp.json()["error"]["code"]) == (409, "survey_closed")
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 0


@pytest.mark.parametrize(
    ("body", "secret", "status"),
    [
        (answer("T-nope"), SURVEY_SECRET, 404),
        (answer("x", satisfaction=7), SURVEY_SECRET, 422),
        (answer("x", satisfaction="很好"), SURVEY_SECRET, 422),
        (answer("x", satisfaction=None), SURVEY_SECRET, 422),
        (answer("x", satisfaction=True), SURVEY_SECRET, 422),  # a yes/no is no score (it was taken as 1)
        (answer("x", resolved="maybe"), SURVEY_SECRET, 422),
        (answer("x"), SECRET, 401),
    ],
)
async def test_bad_answers_are_refused_precisely(
    client: httpx.AsyncClient, redis: Redis, body: bytes, secret: str, status: int
) -> None:
    assert (await post_signed(client, PATH, body, "bad", secret)).status_code == status
    assert await redis.xlen(streams.SURVEYS_ANSWERED) == 0
