"""Survey answers from the callback/SMS gateway: signed JSON (Standard Webhooks, its own secrets).

One answer per ticket per survey: a second answer (or a retried delivery) is a duplicate and changes
nothing. Satisfaction is 1-5, or the words of the usual 12345 callback script: 满意 (satisfied) = 5,
基本满意 (mostly satisfied) = 4, 不满意 (dissatisfied) = 2.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.deps import Deps, published
from services.intake.http import client_ip, instrumented
from services.intake.openapi import SIGNED, EventAccepted, Operation
from shared import streams
from shared.events import SurveyAnswered, utcnow
from shared.ids import derive_id

PATH = "/v1/webhooks/survey"

SATISFACTION_WORDS = {"满意": 5, "基本满意": 4, "不满意": 2}
RESOLVED_WORDS = {"yes": True, "no": False, "是": True, "否": False, "已解决": True, "未解决": False}


def _satisfaction(value: Any) -> Any:
    return SATISFACTION_WORDS.get(value.strip(), value) if isinstance(value, str) else value


def _resolved(value: Any) -> Any:
    return RESOLVED_WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value


class SurveyAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: str = Field(min_length=1, max_length=64)
    survey_id: str | None = Field(
        default=None, max_length=64, description="Which survey of the ticket (a reopened ticket gets another)"
    )
    resolved: Annotated[bool, BeforeValidator(_resolved)] = Field(
        description="true/false, or yes/no, 是/否, 已解决/未解决"
    )
    satisfaction: Annotated[int | None, BeforeValidator(_satisfaction)] = Field(
        default=None, ge=1, le=5, description="1-5, or 满意 (5), 基本满意 (4), 不满意 (2)"
    )
    comment: str | None = Field(default=None, max_length=4000)


OPERATIONS = [
    Operation(
        "post",
        PATH,
        "A citizen's survey answer (signed JSON); one answer per ticket and survey",
        "webhooks",
        ok=202,
        body=SurveyAnswer,
        answer=EventAccepted,
        params=SIGNED,
        errors=(400, 401, 404, 415, 422),
    )
]


def routes(deps: Deps) -> list[Route]:
    async def survey(request: Request) -> Response:
        webhook_id, answer = await deps.signed_json(
            request, deps.settings.survey_webhook_secrets, SurveyAnswer
        )
        event = SurveyAnswered(
            event_id=derive_id(answer.ticket_id, "survey", answer.survey_id or ""),
            ticket_id=answer.ticket_id,
            occurred_at=utcnow(),
            resolved=answer.resolved,
            satisfaction=answer.satisfaction,
            comment=answer.comment,
        )
        stars = f", satisfaction {answer.satisfaction}" if answer.satisfaction else ""
        result = await deps.publish_once(
            "survey",
            streams.SURVEYS_ANSWERED,
            event,
            history={
                "event": "survey_answered",
                "summary": f"resolved: {'yes' if answer.resolved else 'no'}{stars}",
            },
            dedupe=f"delivery:{webhook_id}",
            rate=deps.rate("webhook", client_ip(request)),
        )
        return published(result)

    return [Route(PATH, instrumented("survey", deps.metrics, survey), methods=["POST"])]
