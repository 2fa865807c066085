"""shared.worker.every: the loop of every background pass."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.worker import every

log = logging.getLogger("test.every")


async def test_a_failed_pass_is_logged_and_the_next_one_runs_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    passes: list[int] = []

    async def work() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise ConnectionError("redis away")
        if len(passes) == 3:
            stop.set()

    with caplog.at_level(logging.ERROR, logger="test.every"):
        await asyncio.wait_for(every(stop, 0.01, work, log, "a test pass"), timeout=5)
    assert passes == [0, 1, 2]  # the failure did not end the loop; the stop did
    assert [r.getMessage() for r in caplog.records] == ["a test pass failed; trying again"]


async def test_a_stop_ends_the_wait_between_passes_at_once() -> None:
    stop = asyncio.Event()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        asyncio.get_running_loop().call_later(0.05, stop.set)

    await asyncio.wait_for(every(stop, 3600, work, log, "a slow pass"), timeout=5)
    assert runs == 1
