"""The event contract and its wire format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared import standard_webhooks, streams
from shared.codec import DATA_FIELD, PoisonError, decode, pack
from shared.events import STREAM_EVENTS, TicketReceived
from shared.ids import derive_id, ticket_id_for
from shared.pii import phone_ref as caller_ref

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def event(**over: object) -> TicketReceived:
    data: dict[str, object] = dict(
        event_id="e1",
        ticket_id="T1",
        occurred_at=T0,
        channel="telephony",
        source_id="c1",
        text="停水",
        received_at=T0,
    )
    data.update(over)
    return TicketReceived.model_validate(data)


async def test_codec_round_trip_and_unknown_fields_ignored() -> None:
    data = pack(event())
    assert decode({DATA_FIELD: data}, TicketReceived) == event()
    # A newer producer's extra field must not break an older consumer.
    newer = data.replace(b'"text":', b'"mood":"angry","text":')
    assert decode({DATA_FIELD: newer}, TicketReceived).text == "停水"


async def test_poison_entries_are_named_precisely() -> None:
    with pytest.raises(PoisonError, match="no __data__"):
        decode({b"n": b"5"}, TicketReceived)
    with pytest.raises(PoisonError, match="invalid TicketReceived"):
        decode({DATA_FIELD: b"not json{"}, TicketReceived)
    with pytest.raises(PoisonError, match="unsupported schema version 9"):
        decode({DATA_FIELD: pack(event(version=9))}, TicketReceived)


def test_datetimes_must_be_aware_and_are_kept_in_utc() -> None:
    with pytest.raises(ValidationError):
        event(occurred_at=datetime(2026, 1, 1))
    shifted = event(occurred_at=datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))))
    assert shifted.occurred_at == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert shifted.occurred_at.tzinfo == UTC


@pytest.mark.parametrize(
    "edge",
    [  # in UTC, year 10000 and year 0
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    ],
)
def test_a_datetime_with_no_utc_equivalent_is_a_validation_error(edge: datetime) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        event(occurred_at=edge)


def test_every_stream_has_one_event_type() -> None:
    assert set(STREAM_EVENTS) == set(streams.ALL_STREAMS)
    assert streams.dlq(streams.RECEIVED) == "tickets.received.dlq"


def test_ids_are_deterministic() -> None:
    assert derive_id("a", "b") == derive_id("a", "b") != derive_id("a", "c")
    assert (
        ticket_id_for("telephony", "c1") == ticket_id_for("telephony", "c1") != ticket_id_for("twilio", "c1")
    )


def test_standard_webhooks_signature_with_rotation_and_tolerance() -> None:
    body = b'{"call_id":"1"}'
    headers = standard_webhooks.signed_headers("whsec_b2xk", "msg_1", body, timestamp=1_000_000)
    assert standard_webhooks.verify(["whsec_bmV3", "whsec_b2xk"], headers, body, now=1_000_100) == "msg_1"
    with pytest.raises(standard_webhooks.SignatureError, match="does not match"):
        standard_webhooks.verify(["whsec_bmV3"], headers, body, now=1_000_100)
    with pytest.raises(standard_webhooks.SignatureError, match="tolerance"):
        standard_webhooks.verify(["whsec_b2xk"], headers, body, now=1_000_000 + 301)
    with pytest.raises(standard_webhooks.SignatureError, match="does not match"):
        standard_webhooks.verify(["whsec_b2xk"], headers, body + b" ", now=1_000_100)
    with pytest.raises(standard_webhooks.SignatureError, match="missing"):
        standard_webhooks.verify(["whsec_b2xk"], {}, body)


def test_caller_numbers_are_hashed_with_a_key_and_masked() -> None:
    ref = caller_ref("+86 138-0013-8000", b"k1")
    assert ref.masked.endswith("8000") and "138" not in ref.masked
    assert ref.hash == caller_ref("+8613800138000", b"k1").hash != caller_ref("+8613800138000", b"k2").hash
    assert "13800138000" not in ref.model_dump_json()


@pytest.mark.parametrize("timestamp", ["1" + "0" * 400, "-" + "9" * 400])
def test_a_timestamp_too_large_for_a_float_is_a_signature_error_not_a_crash(timestamp: str) -> None:
    # int() takes up to 4300 digits, but subtracting such an int from time.time() (a float) overflows.
    headers = {"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": "v1,x"}
    with pytest.raises(standard_webhooks.SignatureError, match="tolerance"):
        standard_webhooks.verify(["whsec_b2xk"], headers, b"{}", now=1_000_000.5)
