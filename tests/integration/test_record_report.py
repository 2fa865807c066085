"""The month's 三率 from the record: the same numbers as evaluation's own counters in Redis, on a real
Redis and a real PostgreSQL, for the same events."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from services.evaluation.api import api_routes
from services.evaluation.handlers import Policy, on_answered, on_dispatched, on_updated
from services.evaluation.rates import load_tables
from services.evaluation.record_rates import daily_tables, summed
from services.evaluation.report import load_month, load_month_from_record, render_csv
from services.evaluation.state import load_states
from shared import streams
from shared.db.urls import asyncpg_dsn
from shared.effects import Effects
from shared.events import Event, SurveyAnswered, TicketDispatched, TicketUpdated
from shared.rehydration import RecordReader
from shared.store import TicketStore
from tools.cli import main

pytestmark = pytest.mark.redis
TZ = ZoneInfo("Asia/Shanghai")
POLICY = Policy(tz=TZ, survey_delay=timedelta(0))
MONTH = "2026-11"
STREAM_OF = {
    TicketDispatched: streams.DISPATCHED,
    TicketUpdated: streams.UPDATED,
    SurveyAnswered: streams.SURVEYS_ANSWERED,
}


def _events() -> list[Event]:
    """November's tickets, each dispatched, signed for in time or late (or by another department),
    resolved and surveyed; some answered twice, some reopened and surveyed again; a few on the month's
    edges in the city's time zone."""
    out: list[Event] = []
    for i in range(48):
        local = (
            datetime(2026, 11, 1 + i % 30, 9, tzinfo=TZ)
            if i % 12
            else datetime(2026, 11, 30, 23, 30, tzinfo=TZ)
        )
        at = local.astimezone(UTC)
        ticket = f"R{i:03d}"
        department, category = (
            ("water_utility", "utilities") if i % 3 else ("urban_management", "environment")
        )
        out.append(
            TicketDispatched(
                event_id=f"d{i}",
                ticket_id=ticket,
                occurred_at=at,
                department=department,
                category=category,
                district=f"A{i % 4}区" if i % 7 else None,
                urgency="general",
                dispatch_due_at=at + timedelta(hours=2),
                feedback_due_at=at + timedelta(days=7),
                reason="rule",
                received_at=at,
            )
        )
        acted_by = "police" if i % 11 == 0 else department
        late = timedelta(hours=3) if i % 4 == 0 else timedelta(minutes=30)
        if i % 2:
            out.append(_action(f"a{i}", ticket, at + late, acted_by, "accept"))
        out.append(_action(f"r{i}", ticket, at + late + timedelta(hours=1), department, "resolve"))
        answered = at + timedelta(hours=5)
        out.append(
            _answer(f"s{i}", ticket, answered, 1, resolved=i % 5 != 0, satisfaction=(5, 4, 3, 2, None)[i % 5])
        )
        if i % 6 == 0:  # the same round answered again: counted once
            out.append(
                _answer(f"s{i}b", ticket, answered + timedelta(minutes=5), 1, resolved=True, satisfaction=5)
            )
        if i % 5 == 0:  # reopened (not resolved): resolved again and surveyed in a second round
            again = answered + timedelta(hours=2)
            out.append(_action(f"r{i}-2", ticket, again, department, "resolve"))
            out.append(
                _answer(f"s{i}-2", ticket, again + timedelta(hours=1), 2, resolved=True, satisfaction=4)
            )
    return out


def _action(event_id: str, ticket: str, at: datetime, department: str, action: str) -> TicketUpdated:
    return TicketUpdated(
        event_id=event_id,
        ticket_id=ticket,
        occurred_at=at,
        department=department,
        action=action,  # type: ignore[arg-type]
    )


def _answer(
    event_id: str, ticket: str, at: datetime, survey_round: int, resolved: bool, satisfaction: int | None
) -> SurveyAnswered:
    return SurveyAnswered(
        event_id=event_id,
        ticket_id=ticket,
        occurred_at=at,
        resolved=resolved,
        satisfaction=satisfaction,
        survey_round=survey_round,
    )


async def _count_in_redis(redis: Redis, events: list[Event]) -> None:
    """Evaluation's own handlers over the events, their writes committed to Redis as its worker does."""
    store = TicketStore(redis)
    handlers = {TicketDispatched: on_dispatched, TicketUpdated: on_updated, SurveyAnswered: on_answered}
    for event in events:
        state = (await load_states(redis, [event.ticket_id]))[event.ticket_id]
        effects: Effects = handlers[type(event)](event, state, POLICY)  # type: ignore[operator]
        for write in effects.writes:
            await store.apply(write, scope="evaluation")


async def _record(url: str, events: list[Event]) -> None:
    """The events as the recorder keeps them: the envelope in columns, the rest as the body."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("TRUNCATE ticket_events")
        for month in (date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)):
            await conn.execute("SELECT hotline_ensure_partitions('ticket_events', $1)", month)
        rows = []
        for e in events:
            body = e.model_dump(mode="json", exclude={"event_id", "ticket_id", "occurred_at", "version"})
            rows.append(
                (e.event_id, e.occurred_at, e.ticket_id, STREAM_OF[type(e)], e.version, json.dumps(body))
            )
        await conn.copy_records_to_table(
            "ticket_events",
            records=rows,
            columns=("event_id", "occurred_at", "ticket_id", "stream", "version", "body"),
        )
    finally:
        await conn.close()


def _nonzero(table: object) -> dict[tuple[str, str, str], dict[str, int]]:
    cells = table.cells  # type: ignore[attr-defined]
    return {cell: {m: n for m, n in counts.items() if n} for cell, counts in cells.items() if +counts}


async def test_the_records_counters_are_evaluations_counters(redis: Redis, database_url: str) -> None:
    events = sorted(_events(), key=lambda e: e.occurred_at)
    await _count_in_redis(redis, events)
    await _record(database_url, events)
    start = datetime(2026, 11, 1, tzinfo=TZ)
    end = datetime(2026, 12, 1, tzinfo=TZ)
    record = RecordReader(database_url, strict=True)
    days = await daily_tables(record, start, end, TZ)
    in_redis = await load_tables(redis, "day", [d.isoformat() for d in days])
    assert len(days) >= 28
    for day, table in days.items():
        assert _nonzero(table) == _nonzero(in_redis[day.isoformat()]), day
    month = (await load_tables(redis, "month", [MONTH]))[MONTH]
    assert _nonzero(summed(list(days.values()))) == _nonzero(month)
    counted = {m for counts in _nonzero(month).values() for m in counts}
    assert counted == {"dispatched", "responded", "evaluated", "resolved", "rated", "satisfied", "reopened"}

    from_record = await load_month_from_record(record, MONTH, 1, TZ)
    await record.close()
    from_redis = await load_month(redis, MONTH, 1)
    assert render_csv(from_record) == render_csv(from_redis)


def test_hotline_report_reads_the_record_for_any_past_month(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(_record(database_url, sorted(_events(), key=lambda e: e.occurred_at)))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # Redis is not needed for the record's numbers
    assert main(["report", "--month", MONTH, "--out", str(tmp_path), "--min-volume", "1"]) == 0
    table = (tmp_path / f"sanlv-{MONTH}.csv").read_text(encoding="utf-8")
    assert "water_utility" in table and "urban_management" in table
    assert main(["report", "--month", "2026-13", "--out", str(tmp_path)]) == 2
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["report", "--month", MONTH, "--out", str(tmp_path)]) == 1
    assert "reading the record failed" in capsys.readouterr().err


async def test_the_rates_api_serves_any_span_from_the_record(redis: Redis, database_url: str) -> None:
    events = sorted(_events(), key=lambda e: e.occurred_at)
    await _count_in_redis(redis, events)
    await _record(database_url, events)
    routes = dict(api_routes(redis, TZ, min_volume=1, record_url=database_url))

    async def get(path: str, **params: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=routes[path]), base_url="http://e"
        ) as c:
            return await c.get(path, params=params)

    span = (await get("/v1/rates", unit="district", **{"from": "2026-10-01", "to": "2027-01-01"})).json()
    month = (await get("/v1/rates", unit="district", window="month", bucket=MONTH)).json()
    assert (span["window"], span["from"], span["to"]) == ("span", "2026-10-01", "2027-01-01")
    # The quarter holds November and the answers that fell into December (Shanghai time).
    assert span["city"]["counts"]["dispatched"] == month["city"]["counts"]["dispatched"] == 48
    assert span["city"]["counts"]["evaluated"] > month["city"]["counts"]["evaluated"]
    ranked = (await get("/v1/rankings", rate="response", **{"from": "2026-11-01", "to": "2026-12-01"})).json()
    assert {r["unit"] for r in ranked["ranked"]} == {"water_utility", "urban_management"}
    for bad in ({"from": "2026-11-01"}, {"from": "2026-12-01", "to": "2026-11-01"}, {"from": "x", "to": "y"}):
        assert (await get("/v1/rates", **bad)).status_code == 400
    without = dict(api_routes(redis, TZ, min_volume=1))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=without["/v1/rates"]), base_url="http://e"
    ) as c:
        refused = await c.get("/v1/rates", params={"from": "2026-11-01", "to": "2026-12-01"})
    assert refused.status_code == 400 and "DATABASE_URL" in refused.json()["error"]["message"]
