"""`hotline plan --week` on counts in a real Redis: the agents and departments CSVs."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.insight.state import count_ops, series_key
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
                    pipe.execute_command(*op)
            for n in range(190):
                for op in count_ops(
                    series_key("urban_construction", "D1"), at.replace(hour=3), f"u{day}-{n}"
                ):
                    pipe.execute_command(*op)
        await pipe.execute()
    args = ["plan", "--week", "--today", "2026-11-30", "--out", str(tmp_path), "--handle-seconds", "240"]
    assert await asyncio.to_thread(main, args) == 0
    out = capsys.readouterr().out
    assert "Erlang C" in out and "Erlang A" in out
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
