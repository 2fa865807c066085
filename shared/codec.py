"""Events on the wire: faststream's binary envelope (field `__data__`) around the event's JSON.

Workers write stream entries with plain pipelined XADDs (one round trip per batch) rather than
`broker.publish`, so encoding happens here; faststream subscribers read the same format.
"""

from __future__ import annotations

from typing import TypeVar

from faststream.redis.parser.binary import BinaryMessageFormatV1
from pydantic import ValidationError

from shared.events import Event

E = TypeVar("E", bound=Event)

DATA_FIELD = b"__data__"
SUPPORTED_VERSION = 1


class PoisonError(ValueError):
    """An entry that can never be processed (bad envelope, bad JSON, wrong schema or version)."""


async def encode(event: Event) -> bytes:
    return await BinaryMessageFormatV1.encode(
        message=event.model_dump_json().encode(),
        reply_to=None,
        headers={"content-type": "application/json", "event-type": type(event).__name__},
        correlation_id=event.event_id,
    )


def entry_fields(data: bytes) -> dict[bytes, bytes]:
    return {DATA_FIELD: data}


def decode(fields: dict[bytes, bytes], model: type[E]) -> E:
    raw = fields.get(DATA_FIELD)
    if raw is None:
        raise PoisonError(
            f"entry has no {DATA_FIELD.decode()} field (fields: {sorted(k.decode() for k in fields)})"
        )
    body, _headers = BinaryMessageFormatV1.parse(raw)
    try:
        event = model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise PoisonError(f"invalid {model.__name__}: {problems}") from None
    if event.version > SUPPORTED_VERSION:
        raise PoisonError(
            f"unsupported schema version {event.version} (this build reads <= {SUPPORTED_VERSION})"
        )
    return event
