"""The satisfaction survey as intake and evaluation both see it.

Evaluation opens one survey per resolution (round 1, then round n+1 after the n-th reopening) and writes
its round and status on the ticket; intake accepts one answer per round. Whichever comes first, the
answer or the end of the answer window, claims the survey's outcome key, so a survey is counted either
as evaluated or as not evaluated, never both.
"""

from __future__ import annotations

from typing import Literal

from shared.ids import derive_id

# The words of the 12345 callback mapped onto the 1-5 scale: 满意 (satisfied) and 基本满意 (basically
# satisfied) count as satisfied; 不满意 (dissatisfied) sits with 1-2, which reopen the ticket.
SATISFACTION_WORDS: dict[str, int] = {"满意": 5, "基本满意": 4, "不满意": 2}
SATISFIED_FROM = 4
DISSATISFIED_UP_TO = 2

ROUND_FIELD = "eval_survey_round"
STATUS_FIELD = "eval_survey_status"
EXPIRED = "expired"
OUTCOME_TTL_SECONDS = 400 * 24 * 3600

# The survey's state (`eval_survey_status`) and, beside it, how the gateway took it (`eval_survey_delivery`):
# sent; unsent (no gateway configured: left for a callback); undelivered (refused after every retry).
SurveyStatus = Literal["scheduled", "answered", "expired"]
Delivery = Literal["sent", "unsent", "undelivered"]


def survey_id(ticket_id: str, survey_round: int) -> str:
    return derive_id(ticket_id, "survey", str(survey_round))


def answered_event_id(ticket_id: str, survey_round: int) -> str:
    return derive_id(survey_id(ticket_id, survey_round), "answered")
