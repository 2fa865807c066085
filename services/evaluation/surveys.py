"""Surveys after resolution: sending the due ones through the SMS/IVR gateway, closing unanswered ones.

Two sorted sets hold surveys (`{ticket_id}|{round}`): `due` (score: resolved_at + delay) and `open`
(score: sent_at + answer window). A replica claims members whose time has come with one Lua script that
also pushes their score a lease into the future, so other replicas skip them; the member leaves the set
only in the idempotent store write that records the outcome. A replica that dies mid-send therefore loses
nothing: the lease runs out and another replica sends again with the same `webhook-id` (the survey id),
which the gateway de-duplicates, and the second record of the delivery is a no-op.

With no gateway configured (the `make run` default) a due survey is logged and marked `unsent`: it still
opens for answers (an operator's callback can post one through intake) and otherwise ends not evaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel
from redis.asyncio import Redis

from services.evaluation.handlers import Policy, survey_member, survey_units
from services.evaluation.rates import Measure, count
from services.evaluation.state import TicketState, load_states
from shared import surveys
from shared.bus import as_str
from shared.effects import Op, SortedAdd, SortedRemove, StoreWrite
from shared.outbound import Delivery, OutboundSender
from shared.store import TicketStore, iso, keys

log = logging.getLogger("hotline.evaluation.surveys")

SCOPE = "evaluation"

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
"""

# The answer and the end of the window race for the outcome key; the first to set it wins.
_EXPIRE = """
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
if v == ARGV[1] then return 1 end
return 0
"""

DELIVERY_MEASURES: dict[str, Measure] = {"sent": "surveyed", "undelivered": "undelivered"}

QUESTIONS = {
    "resolved": "您反映的问题是否已解决？ / Has the problem you reported been resolved?",
    "satisfaction": "您对办理结果是否满意：满意、基本满意、不满意？ / Are you satisfied with the handling?",
}


class SurveyRequest(BaseModel):
    """What the gateway receives. No phone number: the call centre knows the citizen by the ticket id."""

    survey_id: str
    ticket_id: str
    survey_round: int
    department: str | None
    category: str | None
    resolved_at: datetime | None
    answer_by: datetime
    questions: dict[str, str]


@dataclass(frozen=True)
class SurveyConfig:
    gateway_url: str | None
    window: timedelta
    lease: timedelta
    poll_seconds: float = 1.0
    batch: int = 50
    concurrency: int = 16


class SurveyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "hotline_evaluation_surveys",
            "Surveys by outcome: sent, unsent (no gateway), undelivered (gave up), expired (no answer)",
            ["outcome"],
            registry=registry,
        )


class SurveyDesk:
    def __init__(
        self,
        redis: Redis,
        config: SurveyConfig,
        policy: Policy,
        sender: OutboundSender | None,
        metrics: SurveyMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.store = TicketStore(redis)
        self.config = config
        self.policy = policy
        self.sender = sender
        self.metrics = metrics
        self.clock = clock
        self._claim = redis.register_script(_CLAIM)
        self._expire = redis.register_script(_EXPIRE)
        if config.gateway_url is None:
            log.warning("no survey gateway configured (HOTLINE_SURVEY_GATEWAY_URL): surveys are not sent")

    async def claim(self, key: str) -> list[tuple[str, int]]:
        now = self.clock()
        raw = await self._claim(
            keys=[key], args=[now, now + self.config.lease.total_seconds(), self.config.batch]
        )
        out = []
        for member in raw:
            ticket_id, _, survey_round = as_str(member).rpartition("|")
            out.append((ticket_id, int(survey_round)))
        return out

    # -- sending ------------------------------------------------------------------------------------

    async def send_due(self) -> int:
        claimed = await self.claim(keys.surveys_due)
        if claimed:
            states = await load_states(self.redis, [t for t, _ in claimed])
            gate = asyncio.Semaphore(self.config.concurrency)

            async def one(ticket_id: str, survey_round: int) -> None:
                async with gate:
                    await self._send(ticket_id, survey_round, states[ticket_id])

            await asyncio.gather(*(one(t, r) for t, r in claimed))
        return len(claimed)

    async def _send(self, ticket_id: str, survey_round: int, state: TicketState) -> None:
        member = survey_member(ticket_id, survey_round)
        if state.eval_survey_round != survey_round or state.eval_survey_status != "scheduled":
            await self.redis.zrem(keys.surveys_due, member)  # answered already, or superseded
            return
        sid = surveys.survey_id(ticket_id, survey_round)
        answer_by = datetime.fromtimestamp(self.clock(), UTC) + self.config.window
        delivery: Delivery | None = None
        if self.sender is not None and self.config.gateway_url:
            request = SurveyRequest(
                survey_id=sid,
                ticket_id=ticket_id,
                survey_round=survey_round,
                department=state.eval_survey_department,
                category=state.eval_survey_category,
                resolved_at=state.eval_resolved_at,
                answer_by=answer_by,
                questions=QUESTIONS,
            )
            body = request.model_dump_json().encode()
            delivery = await self.sender.send(self.config.gateway_url, sid, body)
        outcome = "unsent" if delivery is None else "sent" if delivery.ok else "undelivered"
        now = datetime.fromtimestamp(self.clock(), UTC)
        answer_by = now + self.config.window
        ops: list[Op] = [
            SortedRemove(keys.surveys_due, member),
            SortedAdd(keys.surveys_open, member, answer_by.timestamp()),
        ]
        if measure := DELIVERY_MEASURES.get(outcome):
            ops += count(survey_units(state), measure, now, self.policy.tz)
        detail = "" if delivery is None else f" after {delivery.attempts} tries ({delivery.error or 'ok'})"
        write = StoreWrite(
            ticket_id,
            f"{sid}:delivery",
            fields={
                "eval_survey_delivery": outcome,
                "eval_survey_sent_at": iso(now),
                "eval_survey_answer_by": iso(answer_by),
            },
            history={
                "at": iso(now),
                "event": f"survey_{outcome}",
                "summary": f"survey {survey_round}{detail}",
            },
            ops=ops,
        )
        await self.store.apply(write, scope=SCOPE)
        self.metrics.outcomes.labels(outcome).inc()
        if outcome == "undelivered":
            log.warning("survey %s of %s not delivered: %s", survey_round, ticket_id, detail.strip())

    # -- closing unanswered surveys -----------------------------------------------------------------

    async def expire_due(self) -> int:
        claimed = await self.claim(keys.surveys_open)
        if claimed:
            states = await load_states(self.redis, [t for t, _ in claimed])
            for ticket_id, survey_round in claimed:
                await self._expire_one(ticket_id, survey_round, states[ticket_id])
        return len(claimed)

    async def _expire_one(self, ticket_id: str, survey_round: int, state: TicketState) -> None:
        member = survey_member(ticket_id, survey_round)
        won = await self._expire(
            keys=[keys.survey_outcome(ticket_id, survey_round)],
            args=[surveys.EXPIRED, surveys.OUTCOME_TTL_SECONDS],
        )
        if not won:
            await self.redis.zrem(keys.surveys_open, member)  # the citizen answered in time
            return
        now = datetime.fromtimestamp(self.clock(), UTC)
        write = StoreWrite(
            ticket_id,
            f"{surveys.survey_id(ticket_id, survey_round)}:expired",
            fields={surveys.STATUS_FIELD: surveys.EXPIRED},
            history={
                "at": iso(now),
                "event": "survey_expired",
                "summary": f"survey {survey_round}: no answer",
            },
            ops=[
                SortedRemove(keys.surveys_open, member),
                *count(survey_units(state), "unevaluated", now, self.policy.tz),
            ],
        )
        await self.store.apply(write, scope=SCOPE)
        self.metrics.outcomes.labels("expired").inc()

    # -- the background loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Send and expire until `stop`; a send cut off by shutdown stays leased for another replica."""
        while not stop.is_set():
            work = asyncio.ensure_future(self._pass())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                return
            busy = 0
            try:
                busy = work.result()
            except Exception:
                log.exception("survey pass failed; retrying")
            if busy < self.config.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.poll_seconds)

    async def _pass(self) -> int:
        return max(await self.send_due(), await self.expire_due())
