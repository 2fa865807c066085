"""The whole loop as real processes: a call becomes a ticket, a department resolves it through intake,
the citizen's survey goes out to a real gateway, a dissatisfied answer reopens it, and dispatch sends it
back to the same department; the 三率 move as defined."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.intake.settings import DEV_SECRET, DEV_SURVEY_SECRET, dev_department_token
from shared import streams
from shared.bus import read_range, redis_client
from shared.codec import decode
from shared.events import TicketDispatched
from shared.standard_webhooks import signed_headers
from shared.store import Ticket, TicketStore
from tests.support import Recorder, recording_server, wait_for
from tools.demo import post_calls
from tools.runner import Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


@pytest.fixture
def redis_clean(redis_url: str) -> Iterator[str]:
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    yield redis_url


async def test_resolve_survey_dissatisfied_reopen_redispatch(redis_clean: str, tmp_path: Path) -> None:
    async with recording_server() as gateway:
        env = {
            "HOTLINE_SURVEY_GATEWAY_URL": f"{gateway.url}/surveys",
            "HOTLINE_SURVEY_DELAY_SECONDS": "0",
            "HOTLINE_SURVEY_POLL_SECONDS": "0.2",
            "HOTLINE_MIN_VOLUME": "1",
        }
        with Stack(redis_url=redis_clean, log_dir=tmp_path / "logs", extra_env=env) as stack:
            await run_the_loop(stack, gateway)


async def run_the_loop(stack: Stack, gateway: Recorder) -> None:
    redis = redis_client(stack.redis_url or "")
    store = TicketStore(redis)
    intake = httpx.AsyncClient(base_url=stack.url_of("intake"), timeout=10)
    try:
        call = {
            "call_id": "loop-1",
            "caller": "+8613800001111",
            "transcript": "我家停水三天了，没有自来水",
            "language": "zh",
        }
        [ticket_id] = (await post_calls(stack.url_of("intake"), DEV_SECRET, [call])).values()

        async def dispatched(attempt_at_least: int = 1) -> Ticket | None:
            t = await store.get(ticket_id)
            extra = (t.model_extra or {}) if t else {}
            ok = (
                t is not None
                and t.status == "dispatched"
                and int(extra.get("attempt", 1)) >= attempt_at_least
            )
            return t if ok else None

        ticket = await wait_for(dispatched, "the ticket to be dispatched")
        department = ticket.department
        token = {"authorization": f"Bearer {dev_department_token(department)}"}
        for action in ("accept", "resolve"):
            resp = await intake.post(
                f"/v1/departments/{department}/tickets/{ticket_id}/{action}", headers=token
            )
            assert resp.status_code == 202, resp.text

        def surveys() -> list[dict[str, Any]]:
            return [json.loads(r.body) for r in gateway.requests if r.path == "/surveys"]

        async def surveyed() -> list[dict[str, Any]]:
            return [s for s in surveys() if s.get("ticket_id") == ticket_id]

        [survey] = await wait_for(surveyed, "the survey to reach the gateway")
        assert "13800001111" not in json.dumps(survey), "the gateway gets no phone number"

        body = json.dumps({"ticket_id": ticket_id, "resolved": False, "satisfaction": "不满意"}).encode()
        headers = {**signed_headers(DEV_SURVEY_SECRET, "answer-1", body), "content-type": "application/json"}
        resp = await intake.post("/v1/webhooks/survey", content=body, headers=headers)
        assert resp.status_code == 202, resp.text

        async def reopened() -> Ticket | None:
            t = await store.get(ticket_id)
            extra = (t.model_extra or {}) if t else {}
            return t if t and t.status == "dispatched" and extra.get("reopen_count") == "1" else None

        again = await wait_for(reopened, "the reopened ticket to be dispatched again")
        assert again.department == department, "a reopened ticket goes back to the same department"
        events = [h["event"] for h in await store.history(ticket_id)]
        assert events.index("reopened") > events.index("survey_answered") > events.index("resolve")
        dispatches = [
            decode(fields, TicketDispatched)
            for _, fields in await read_range(redis, streams.DISPATCHED)
            if decode(fields, TicketDispatched).ticket_id == ticket_id
        ]
        assert [d.department for d in dispatches] == [department, department]

        async def counted() -> dict[str, Any] | None:
            async with httpx.AsyncClient(base_url=stack.url_of("evaluation")) as http:
                rates = (await http.get("/v1/rates", params={"unit": "department"})).json()
            unit = next((u for u in rates["units"] if u["unit"] == department), None)
            return unit if unit and unit["counts"].get("reopened") == 1 else None

        unit = await wait_for(counted, "evaluation to count the reopening")
        assert unit["rates"]["resolution"]["raw"] == 0.0
        assert unit["rates"]["satisfaction"]["raw"] == 0.0
        # Two dispatches (the first and the one after reopening); only the first was signed for yet.
        assert unit["rates"]["response"]["raw"] == 0.5
    finally:
        await intake.aclose()
        await redis.aclose()
