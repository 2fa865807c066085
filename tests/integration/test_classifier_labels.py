"""Operators' corrections go back into training: intake's route, `model export-labels`, `model train`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.classifier.cli import main
from services.classifier.model import TextClassifier
from services.classifier.starter import STARTER_CSV
from services.intake.settings import DEV_OPERATOR_TOKEN
from tests.integration.intake_support import dispatch_to, intake_client, new_ticket

pytestmark = pytest.mark.redis


async def correct(redis: Redis, redis_url: str, corrections: list[tuple[str, str]]) -> list[str]:
    """Post each (call id, category) correction through intake's operator route; return the ticket ids."""
    tickets = []
    async with intake_client(redis_url) as client:
        for call_id, category in corrections:
            ticket_id = await new_ticket(client, call_id)
            await dispatch_to(redis, ticket_id, "water_utility", category="utilities")
            resp = await client.post(
                f"/v1/operators/tickets/{ticket_id}/category",
                json={"category": category},
                headers={"authorization": f"Bearer {DEV_OPERATOR_TOKEN}"},
            )
            assert resp.status_code == 202, resp.text
            tickets.append(ticket_id)
    return tickets


async def test_corrections_are_exported_and_retrained_on(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    first, second, again = await correct(
        redis, redis_url, [("c1", "housing_property"), ("c2", "public_safety"), ("c1", "environment")]
    )
    assert again == first
    out = tmp_path / "labels.jsonl"
    args = ["model", "export-labels", "--out", str(out), "--redis-url", redis_url]
    assert await asyncio.to_thread(main, args) == 0

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # The same call is one ticket: its later correction replaces the earlier one.
    assert [(r["ticket_id"], r["category"]) for r in rows] == [
        (second, "public_safety"),
        (first, "environment"),
    ]
    assert {r["text"] for r in rows} == {"小区停水两天了"}

    model_dir = tmp_path / "model"
    train = ["model", "train", "--data", str(STARTER_CSV), "--text-col", "text", "--label-col", "category"]
    assert await asyncio.to_thread(main, [*train, "--out", str(model_dir), "--corrections", str(out)]) == 0
    assert TextClassifier.load(model_dir).report["n"] == 240 + 2


async def test_export_with_no_corrections_writes_an_empty_file(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    assert (
        await asyncio.to_thread(main, ["model", "export-labels", "--out", str(out), "--redis-url", redis_url])
        == 0
    )
    assert out.read_text(encoding="utf-8") == ""


def test_an_unreachable_redis_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "model",
        "export-labels",
        "--out",
        str(tmp_path / "x.jsonl"),
        "--redis-url",
        "redis://127.0.0.1:1/0",
    ]
    assert main(args) == 2
    assert "cannot read the labels from Redis" in capsys.readouterr().err
