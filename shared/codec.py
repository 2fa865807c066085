"""Events on the wire: faststream's binary envelope (field `__data__`) around the event's JSON.

Workers write stream entries with plain pipelined XADDs (one round trip per batch) rather than
`broker.publish`, so encoding happens here, synchronously; faststream subscribers read the same format.
"""

from __future__ import annotations

import functools
import struct
from typing import TypeVar

from faststream.redis.parser.binary import BinaryMessageFormatV1
from pydantic import ValidationError

from shared.events import Event

E = TypeVar("E", bound=Event)

DATA_FIELD = b"__data__"
SUPPORTED_VERSION = 1


class PoisonError(ValueError):
    """An entry that can never be processed (bad envelope, bad JSON, wrong schema or version)."""


_MAGIC = BinaryMessageFormatV1.IDENTITY_HEADER
_PREFIX = struct.Struct(">HII")  # format version, headers offset, body offset
_HEADERS_AT = len(_MAGIC) + _PREFIX.size


def _string(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def pack(event: Event) -> bytes:
    """The entry's `__data__`: byte for byte what `BinaryMessageFormatV1.encode` writes (tested), built
    directly; faststream's async encode builds a message object and a header dict per event."""
    headers = (
        _string(b"correlation_id")
        + _string(event.event_id.encode())
        + _CONTENT_TYPE
        + _string(type(event).__name__.encode())
    )
    prefix = _PREFIX.pack(SUPPORTED_VERSION, _HEADERS_AT, _HEADERS_AT + 2 + len(headers))
    return b"".join((_MAGIC, prefix, b"\x00\x03", headers, event.__pydantic_serializer__.to_json(event)))


_CONTENT_TYPE = _string(b"content-type") + _string(b"application/json") + _string(b"event-type")


def _body(raw: bytes, model: type[Event]) -> bytes:
    """The event JSON inside an entry; entries not written by `pack` go through faststream's parser.
    Some events validate as others (a TicketDispatched as a TicketReopened), so an envelope naming another
    event type is refused; one naming none is read as `model`."""
    if raw.startswith(_MAGIC) and len(raw) >= _HEADERS_AT + 2:
        version, headers_at, body_at = _PREFIX.unpack_from(raw, len(_MAGIC))
        if version == SUPPORTED_VERSION and headers_at == _HEADERS_AT and body_at <= len(raw):
            if raw.endswith(_type_header(model), 0, body_at):  # as `pack` writes it: the last header
                return raw[body_at:]
            _check_type(_event_type(raw[headers_at:body_at]), model)
            return raw[body_at:]
    body, headers = BinaryMessageFormatV1.parse(raw)
    event_type = headers.get("event-type") if isinstance(headers, dict) else None
    _check_type(event_type if isinstance(event_type, str) else None, model)
    return body


def _check_type(event_type: str | None, model: type[Event]) -> None:
    if event_type is not None and event_type != model.__name__:
        raise PoisonError(f"a {event_type} on a stream of {model.__name__}")


def _event_type(headers: bytes) -> str | None:
    (count,), at = _SHORT.unpack_from(headers), 2
    for _ in range(count):
        strings = []
        for _ in range(2):  # the header's name, then its value
            (size,) = _SHORT.unpack_from(headers, at)
            strings.append(headers[at + 2 : at + 2 + size])
            at += 2 + size
        if strings[0] == b"event-type":
            return strings[1].decode()
    return None


_SHORT = struct.Struct(">H")


@functools.cache
def _type_header(model: type[Event]) -> bytes:
    return _string(b"event-type") + _string(model.__name__.encode())


def entry_fields(data: bytes) -> dict[bytes, bytes]:
    return {DATA_FIELD: data}


def event_json(fields: dict[bytes, bytes], model: type[Event]) -> bytes:
    """The JSON of the `model` event an entry carries, not validated (the recorder keeps it as it is)."""
    raw = fields.get(DATA_FIELD)
    if raw is None:
        raise PoisonError(
            f"entry has no {DATA_FIELD.decode()} field (fields: {sorted(k.decode() for k in fields)})"
        )
    return _body(raw, model)


def decode(fields: dict[bytes, bytes], model: type[E]) -> E:
    body = event_json(fields, model)
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
