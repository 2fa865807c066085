"""Dead letters: listing them and putting them back on their stream once the cause is fixed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from shared import streams
from shared.bus import read_range
from shared.codec import DATA_FIELD

META_FIELDS = (b"reason", b"error", b"service", b"group", b"original_id", b"deliveries", b"dead_at")


class DeadLetter(BaseModel):
    stream: str
    dlq_id: str
    original_id: str
    reason: str
    error: str
    service: str
    group: str
    deliveries: int
    dead_at: datetime | None
    ticket_id: str | None


def field_text(fields: dict[bytes, bytes], key: bytes) -> str:
    return fields.get(key, b"").decode(errors="replace")


def dead_at(fields: dict[bytes, bytes]) -> datetime | None:
    """When the entry was set aside (`dead_at`, unix seconds), as every dead-letter writer records it."""
    at = field_text(fields, b"dead_at")
    return datetime.fromtimestamp(float(at), UTC) if at else None


def _ticket_id(fields: dict[bytes, bytes]) -> str | None:
    """Best effort: the ticket id inside the original payload, if it decodes at all."""
    import json

    from faststream.redis.parser.binary import BinaryMessageFormatV1

    try:
        body, _ = BinaryMessageFormatV1.parse(fields[DATA_FIELD])
        value = json.loads(body).get("ticket_id")
        return str(value) if value is not None else None
    except Exception:
        return None


def parse(stream: str, dlq_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        stream=stream,
        dlq_id=dlq_id.decode(),
        original_id=field_text(fields, b"original_id"),
        reason=field_text(fields, b"reason"),
        error=field_text(fields, b"error"),
        service=field_text(fields, b"service"),
        group=field_text(fields, b"group"),
        deliveries=int(field_text(fields, b"deliveries") or 0),
        dead_at=dead_at(fields),
        ticket_id=_ticket_id(fields),
    )


async def list_dead(redis: Redis, stream: str | None = None, limit: int = 100) -> list[DeadLetter]:
    names = [stream] if stream else list(streams.ALL_STREAMS)
    out: list[DeadLetter] = []
    for name in names:
        entries = await read_range(redis, streams.dlq(name), count=limit)
        out.extend(parse(name, dlq_id, fields) for dlq_id, fields in entries)
    return out[:limit]


async def replay(redis: Redis, stream: str, ids: list[str] | None = None) -> int:
    """Re-append dead letters (all, or those `ids`) to `stream` and drop them from its DLQ, one MULTI each."""
    entries = await read_range(redis, streams.dlq(stream))
    wanted = set(ids) if ids else None
    count = 0
    for dlq_id, fields in entries:
        if wanted is not None and dlq_id.decode() not in wanted:
            continue
        original: dict[Any, Any] = {k: v for k, v in fields.items() if k not in META_FIELDS}
        if not original:
            continue
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, original)
            pipe.xdel(streams.dlq(stream), dlq_id)
            await pipe.execute()
        count += 1
    return count
