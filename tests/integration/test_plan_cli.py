"""`hotline plan --week` on counts in a real Redis: the agents and departments CSVs."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.insight.state import count_ops, series_key
from shared.effects import StoreWrite
from shared.store import TicketStore, iso, keys
from tests.integration.intake_support import call, intake_client, post_signed
from tools.cli import main

pytestmark = pytest.mark.redis
TODAY = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday


@pytest.fixture
def cli_redis(redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Redis:
    """The flushed test Redis, which the command reaches through REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    return redis


async def test_plan_week_writes_agents_per_hour_and_department_short_days(
    cli_redis: Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with cli_redis.pipeline(transaction=False) as pipe:
        for day in range(1, 7 * 6 + 1):
            at = TODAY - timedelta(days=day)
            # 40 water tickets a day at 02:00 UTC (10:00 in the city); 190 urban-management ones at 03:00.
            for n in range(40):
                for op in count_ops(series_key("utilities", "D1"), at.replace(hour=2), f"w{day}-{n}"):
                    for command in op.commands():
                        pipe.execute_command(*command)
            for n in range(190):
                for op in count_ops(
                    series_key("urban_construction", "D1"), at.replace(hour=3), f"u{day}-{n}"
                ):
                    for command in op.commands():
                        pipe.execute_command(*command)
        await pipe.execute()
    # The call centre's handling time is measured from the calls' durations (4 minutes each).
    store = TicketStore(cli_redis)
    for n in range(25):
        at = TODAY - timedelta(days=1, minutes=n)
        fields = {"channel": "telephony", "received_at": iso(at), "handle_seconds": "240.0"}
        await store.apply(StoreWrite(ticket_id=f"T{n}", event_id=f"r{n}", fields=fields), scope="intake")
        await cli_redis.zadd(keys.by_created, {f"T{n}": at.timestamp()})
    args = ["plan", "--week", "--today", "2026-11-30", "--out", str(tmp_path)]
    assert await asyncio.to_thread(main, args) == 0
    out = capsys.readouterr().out
    assert "Erlang C" in out and "Erlang A" in out
    assert "call handling time: 240 s (measured: mean of 25 recent calls)" in out
    with (tmp_path / "plan-agents-2026-11-30.csv").open(encoding="utf-8") as f:
        hours = list(csv.DictReader(f))
    assert len(hours) == 7 * 24
    ten = [h for h in hours if h["hour_start"].endswith("T10:00:00+08:00")]
    eleven = [h for h in hours if h["hour_start"].endswith("T11:00:00+08:00")]
    assert all(float(h["calls"]) == pytest.approx(40, abs=1) for h in ten)
    assert all(float(h["calls"]) == pytest.approx(190, abs=2) for h in eleven)
    # 190 calls of 4 min: 12.7 Erlangs, so more agents than that under Erlang C, and A no more than C.
    assert all(int(h["agents_erlang_c"]) > 12.7 for h in eleven)
    assert all(int(h["agents_erlang_a"]) <= int(h["agents_erlang_c"]) for h in hours)
    assert all(int(h["agents_erlang_c"]) == 0 for h in hours if float(h["calls"]) == 0)
    with (tmp_path / "plan-departments-2026-11-30.csv").open(encoding="utf-8") as f:
        days = list(csv.DictReader(f))
    water = [d for d in days if d["department"] == "water_utility"]
    urban = [d for d in days if d["department"] == "urban_management"]
    assert len(water) == 7 and not any(d["short"] == "1" for d in water)  # 60 a day, every day
    # 190 a day on office days only (266 a working day) cannot absorb 190 on Saturday and Sunday too.
    assert [d["short"] for d in urban] == ["0"] * 5 + ["1", "1"]


async def test_plan_week_with_no_counts_says_so(
    cli_redis: Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["plan", "--week", "--out", str(tmp_path)]) == 2
    assert "no ticket counts" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["plan", "--week", "--level", "1.5"]) == 2
    assert "--level" in capsys.readouterr().err


async def test_a_telephony_call_keeps_its_duration_for_the_plan(cli_redis: Redis, redis_url: str) -> None:
    start = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    async with intake_client(redis_url) as client:
        timed = call(
            "c-timed", started_at=start.isoformat(), ended_at=(start + timedelta(seconds=312)).isoformat()
        )
        backwards = call(
            "c-odd", started_at=start.isoformat(), ended_at=(start - timedelta(seconds=5)).isoformat()
        )
        first = await post_signed(client, "/v1/webhooks/telephony", timed, webhook_id="m1")
        second = await post_signed(client, "/v1/webhooks/telephony", backwards, webhook_id="m2")
    store = TicketStore(cli_redis)
    kept = await store.get_or_raise(first.json()["ticket_id"])
    odd = await store.get_or_raise(second.json()["ticket_id"])
    assert (kept.model_extra or {}).get("handle_seconds") == "312.0"
    assert "handle_seconds" not in (odd.model_extra or {}), "an end before the start is no duration"
