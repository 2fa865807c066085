"""POST /v1/webhooks/survey: a citizen's answer to the satisfaction survey, from the SMS/IVR gateway.

Body (JSON, Standard Webhooks signed with the survey secrets): `ticket_id`, `resolved` (true/false, or
yes/no, 是/否, 已解决/未解决), `satisfaction` (1-5, or the callback script's words 满意 = 5, 基本满意 = 4,
不满意 = 2), `comment` (optional). Evaluation opens one survey per resolution (its round is on the
ticket); one answer counts per round: the first is stored and published (`SurveyAnswered`, event id
derived from the ticket and round) in one script, a repeat gets 202 with `duplicate: true`. Evaluation
records the answer in the ticket's history when it takes the event.
Errors: 404 unknown ticket; 409 no survey open (never resolved, or the answer window has closed).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.deps import Deps
from services.intake.http import HttpError, available, client_ip, instrumented
from services.intake.openapi import SIGNED, Operation
from shared import streams, surveys
from shared.bus import as_str
from shared.codec import pack
from shared.events import SurveyAnswered, utcnow
from shared.pii import MaskedText
from shared.store import keys, names_a_ticket

PATH = "/v1/webhooks/survey"

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

RESOLVED_WORDS = {"yes": True, "no": False, "是": True, "否": False, "已解决": True, "未解决": False}


def _satisfaction(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would take true as 1, the lowest score
        raise ValueError("satisfaction is a score of 1-5 or a word, not true/false")
    return surveys.SATISFACTION_WORDS.get(value.strip(), value) if isinstance(value, str) else value


def _resolved(value: Any) -> Any:
    return RESOLVED_WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value


class SurveyAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: str = Field(min_length=1, max_length=64)
    resolved: Annotated[bool, BeforeValidator(_resolved)] = Field(
        description="true/false, or yes/no, 是/否, 已解决/未解决"
    )
    satisfaction: Annotated[int, BeforeValidator(_satisfaction), Field(ge=1, le=5)] = Field(
        description="1-5, or 满意 (5), 基本满意 (4), 不满意 (2)"
    )
    comment: MaskedText | None = Field(default=None, max_length=4000)


class SurveyAccepted(BaseModel):
    ticket_id: str
    survey_round: int
    duplicate: bool


OPERATIONS = [
    Operation(
        "post",
        PATH,
        "A citizen's survey answer (signed JSON); one answer per ticket and survey round",
        "webhooks",
        ok=202,
        body=SurveyAnswer,
        answer=SurveyAccepted,
        params=SIGNED,
        errors=(400, 401, 404, 409, 413, 415, 422, 429, 503),
    )
]


def routes(deps: Deps) -> list[Route]:
    redis = deps.redis
    script = redis.register_script(_ANSWER)

    async def answer(request: Request) -> Response:
        await deps.limit("webhook", client_ip(request))
        _, data = await deps.signed_json(request, deps.settings.survey_webhook_secrets, SurveyAnswer)
        if not names_a_ticket(data.ticket_id):
            raise HttpError(404, "unknown_ticket", f"no ticket {data.ticket_id}")
        current = await available(redis.hget(keys.ticket(data.ticket_id), surveys.ROUND_FIELD))
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
            result = await available(
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
                        deps.settings.stream_maxlen,
                        pack(event),
                        surveys.ROUND_FIELD,
                        surveys.EXPIRED,
                    ],
                )
            )
            outcome = as_str(result[0])
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
        deps.metrics.events.labels("survey", outcome).inc()
        body = SurveyAccepted(
            ticket_id=data.ticket_id, survey_round=survey_round, duplicate=outcome == "duplicate"
        )
        return JSONResponse(body.model_dump(), status_code=202)

    return [Route(PATH, instrumented("survey", deps.metrics, answer), methods=["POST"])]
