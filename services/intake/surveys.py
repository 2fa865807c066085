"""POST /v1/webhooks/survey: a citizen's answer to the satisfaction survey, from the SMS/IVR gateway.

Body (JSON, Standard Webhooks signed): `ticket_id`, `resolved` (bool), `satisfaction` (1-5, or the
words 满意 = 5, 基本满意 = 4, 不满意 = 2), `comment` (optional). One answer counts per survey: the first
one is stored and published (`SurveyAnswered` on `surveys.answered`, event id derived from the ticket
and survey round); a repeat gets 202 with `duplicate: true` and changes nothing.
Errors: 404 unknown ticket, 409 no survey open (never resolved, or the answer window has closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.http import HttpError, IntakeMetrics, instrumented, signed_json
from shared import streams, surveys
from shared.codec import encode
from shared.events import SurveyAnswered, utcnow
from shared.store import keys

if TYPE_CHECKING:
    from services.intake.app import IntakeSettings

_ANSWER = """
local round = redis.call('HGET', KEYS[1], ARGV[6])
if not round then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
  return {'no_survey'}
end
if round ~= ARGV[1] then return {'stale', round} end
local outcome = redis.call('GET', KEYS[2])
if outcome == ARGV[7] then return {'closed'} end
if outcome then return {'duplicate'} end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', '__data__', ARGV[5])
return {'accepted'}
"""


def _satisfaction(value: Any) -> Any:
    return surveys.SATISFACTION_WORDS.get(value.strip(), value) if isinstance(value, str) else value


class SurveyAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: str = Field(min_length=1, max_length=64)
    resolved: bool
    satisfaction: Annotated[int, BeforeValidator(_satisfaction), Field(ge=1, le=5)]
    comment: str | None = Field(default=None, max_length=4000)


def survey_routes(settings: IntakeSettings, redis: Redis, metrics: IntakeMetrics) -> list[Route]:
    # Imported here, not at the top: app.py imports this module while it is being loaded.
    from services.intake.app import store_or_unavailable

    script = redis.register_script(_ANSWER)

    async def answer(request: Request) -> Response:
        _, data = await signed_json(request, settings.webhook_secrets, settings.max_body_bytes, SurveyAnswer)
        current = await store_or_unavailable(redis.hget(keys.ticket(data.ticket_id), surveys.ROUND_FIELD))
        for _ in range(3):  # a new round can open between the read and the script: read it again
            survey_round = int(current) if current is not None else 0
            event = SurveyAnswered(
                event_id=surveys.answered_event_id(data.ticket_id, survey_round),
                ticket_id=data.ticket_id,
                occurred_at=utcnow(),
                resolved=data.resolved,
                satisfaction=data.satisfaction,
                comment=data.comment,
                survey_round=survey_round or None,
            )
            result = await store_or_unavailable(
                script(
                    keys=[
                        keys.ticket(data.ticket_id),
                        keys.survey_outcome(data.ticket_id, survey_round),
                        streams.SURVEYS_ANSWERED,
                    ],
                    args=[
                        str(survey_round),
                        event.event_id,
                        surveys.OUTCOME_TTL_SECONDS,
                        settings.stream_maxlen,
                        await encode(event),
                        surveys.ROUND_FIELD,
                        surveys.EXPIRED,
                    ],
                )
            )
            outcome = _s(result[0])
            if outcome != "stale":
                break
            current = result[1]
        if outcome == "unknown":
            raise HttpError(404, "unknown_ticket", f"no ticket {data.ticket_id}")
        if outcome == "no_survey":
            raise HttpError(409, "no_survey", "this ticket has no survey: it has not been resolved")
        if outcome == "closed":
            raise HttpError(409, "survey_closed", "the answer window of this survey has closed")
        if outcome == "stale":
            raise HttpError(409, "survey_changed", "the ticket's survey changed while answering; retry")
        return JSONResponse(
            {"ticket_id": data.ticket_id, "survey_round": survey_round, "duplicate": outcome == "duplicate"},
            status_code=202,
        )

    return [Route("/v1/webhooks/survey", instrumented("survey", metrics, answer), methods=["POST"])]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
