"""Our fast paths on the wire produce exactly what the libraries they replace produce."""

from __future__ import annotations

import uuid

import pytest
from faststream.redis.parser.binary import BinaryMessageFormatV1
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from shared.bus import PackedConnection
from shared.codec import DATA_FIELD, decode, pack
from shared.events import Location, TicketReceived
from shared.ids import derive_id, ticket_id_for
from tests.unit.test_contract import event

EVENTS = [
    event(),
    event(
        event_id="6f1d3c52-8f0e-4b7a-9a57-2d1e0c4b9a11",
        channel="open311",
        source_id="r" * 128,
        text="路灯坏了 " * 2000,
        location=Location(lat=39.9, lon=116.4, address="朝阳区"),
        attributes={"a": ["1", "2"]},
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=["small", "large"])
async def test_pack_writes_the_bytes_faststream_writes(event: TicketReceived) -> None:
    reference = await BinaryMessageFormatV1.encode(
        message=event.model_dump_json().encode(),
        reply_to=None,
        headers={"content-type": "application/json", "event-type": "TicketReceived"},
        correlation_id=event.event_id,
    )
    assert pack(event) == reference
    body, headers = BinaryMessageFormatV1.parse(pack(event))
    assert body == event.model_dump_json().encode()
    assert headers == {
        "correlation_id": event.event_id,
        "content-type": "application/json",
        "event-type": "TicketReceived",
    }
    assert decode({DATA_FIELD: reference}, TicketReceived) == event


def test_decode_still_reads_what_outside_producers_write() -> None:
    plain = EVENTS[0].model_dump_json().encode()  # faststream's parser accepts bare JSON
    assert decode({DATA_FIELD: plain}, TicketReceived) == EVENTS[0]


COMMANDS = [
    ("XADD", "s", "MAXLEN", "~", 1_000_000, "*", b"__data__", b"\x89BIN\r\n\x1a\n\x00\x01"),
    ("ZADD", "hotline:dept:water:open", 1764316800.123456, "T1"),
    ("ZADD", "k", 0.1 + 0.2, "x", -0.0, "y", 1e20, "z", 1.5e-7, "w"),
    ("HSET", "k", "文本", "我们小区已经停水两天了", "n", -42),
    ("CONFIG GET", "maxmemory"),
    (b"SCRIPT LOAD", b"return 1"),
    ("SET", "k", memoryview(b"view")),
    ("SET", "k", bytearray(b"array")),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_packed_connection_sends_what_redis_py_sends(command: tuple[object, ...]) -> None:
    ours = b"".join(bytes(x) for x in PackedConnection().pack_command(*command))  # type: ignore[arg-type]
    theirs = b"".join(bytes(x) for x in Connection().pack_command(*command))  # type: ignore[arg-type]
    assert ours == theirs


def test_packed_connection_refuses_what_redis_py_refuses() -> None:
    with pytest.raises(DataError):
        PackedConnection().pack_command("SET", "k", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "parts", [("e1", "classified"), ("6f1d3c52-8f0e-4b7a-9a57-2d1e0c4b9a11", "dispatched"), ("停水", ""), ()]
)
def test_ids_are_the_uuid5_they_always_were(parts: tuple[str, ...]) -> None:
    namespace = uuid.UUID("6f1d3c52-8f0e-4b7a-9a57-2d1e0c4b9a11")
    assert derive_id(*parts) == str(uuid.uuid5(namespace, "\x1f".join(parts)))
    source = "\x1f".join(parts)
    expected = "T" + uuid.uuid5(namespace, f"ticket\x1ftelephony\x1f{source}").hex[:15].upper()
    assert ticket_id_for("telephony", source) == expected
