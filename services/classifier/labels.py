"""Operators' corrections, read back from the `hotline:labels` stream as training examples."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from shared.bus import as_str
from shared.store import keys

PAGE = 1000


class Label(BaseModel):
    """One correction as `model train --corrections` reads it (the extra fields say where it came from)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    text: str
    category: str
    ticket_id: str
    at: str = ""


async def read_labels(redis: Redis) -> list[Label]:
    """Every correction with a text, the latest per ticket (an operator may change their mind)."""
    latest: dict[str, Label] = {}
    start = "-"
    while entries := await redis.xrange(keys.labels, min=start, count=PAGE):
        for entry_id, fields in entries:
            if entry_id is not None:
                start = f"({as_str(entry_id)}"
            data = {as_str(k): as_str(v) for k, v in (fields or {}).items() if v is not None}
            if data.get("text", "").strip() and data.get("category") and data.get("ticket_id"):
                label = Label.model_validate(data)
                latest.pop(label.ticket_id, None)  # re-inserted last, so the file keeps stream order
                latest[label.ticket_id] = label
    return list(latest.values())


def write_jsonl(labels: list[Label], path: Path) -> None:
    lines = [json.dumps(label.model_dump(), ensure_ascii=False) for label in labels]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
