"""The data contract: declared once, enforced on every write, rendered into docs/data-contract.md."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from services.classifier.duplicates import SIGNATURE_FIELD, bucket_key
from services.dispatch import state as dispatch_state
from services.dispatch.handlers import Assigned
from services.evaluation.handlers import DISPATCHED_BY_CATEGORY
from services.evaluation.state import TicketState
from services.insight import problem_store
from services.insight import state as insight_state
from services.insight.plan_data import PLAN
from services.intake.auth_throttle import failure_key
from services.intake.writes import rate_key
from shared import contract
from shared.contract import FieldType, UndeclaredWriteError
from shared.effects import Increment, SortedAdd, StoreWrite
from shared.status import Status
from shared.store import Ticket, check_write, keys
from shared.surveys import ROUND_FIELD, STATUS_FIELD
from tools.contract_doc import DOC, render


def test_a_scope_writing_a_field_it_does_not_own_is_refused_and_told_whom_to_ask() -> None:
    write = StoreWrite("T1", "e1", fields={"category": "roads", "department": "roads"})
    with pytest.raises(UndeclaredWriteError, match="'department', which dispatch owns"):
        check_write(write, contract.CLASSIFIER)
    check_write(write, contract.DISPATCH)  # dispatch keeps a copy of the category beside its own


def test_an_undeclared_field_or_key_is_refused_with_the_line_to_add_to_the_contract() -> None:
    with pytest.raises(UndeclaredWriteError) as field:
        check_write(StoreWrite("T1", "e1", fields={"mood": "calm"}), contract.EVALUATION)
    assert 'TicketField("mood", FieldType.' in str(field.value) and "shared/contract.py" in str(field.value)
    with pytest.raises(UndeclaredWriteError) as key:
        check_write(StoreWrite("T1", "e1", ops=[SortedAdd("hotline:moods", "T1", 1)]), contract.EVALUATION)
    assert 'RedisKey("hotline:' in str(key.value) and "REDIS_KEYS" in str(key.value)


def test_another_services_key_and_a_field_incremented_on_the_ticket_are_checked_too() -> None:
    acceptance = StoreWrite("T1", "e1", ops=[Increment(dispatch_state.ACCEPTANCE, "roads|a")])
    with pytest.raises(UndeclaredWriteError, match="which dispatch owns"):
        check_write(acceptance, contract.EVALUATION)
    repeat = StoreWrite("T1", "e1", ops=[Increment(keys.ticket("T1"), "repeat_count")])
    check_write(repeat, contract.DISPATCH)
    with pytest.raises(UndeclaredWriteError, match="'repeat_count', which dispatch owns"):
        check_write(repeat, contract.CLASSIFIER)


def test_a_tickets_history_is_not_read_as_a_ticket_and_a_last_part_may_hold_anything() -> None:
    assert contract.key_of(keys.history("T1")) is not contract.TICKET
    assert contract.key_of(keys.ticket("T1")) is contract.TICKET
    assert contract.key_of(insight_state.recent_key("roads|A2:east")) is not None
    assert contract.key_of("hotline:ticket") is None


def test_every_key_the_services_spell_is_declared() -> None:
    names = [
        keys.ticket("T"),
        keys.applied("T"),
        keys.history("T"),
        keys.by_created,
        keys.unrecorded,
        keys.evicted,
        keys.updates(1),
        keys.labels,
        keys.department_open("d"),
        keys.counters("n"),
        keys.chronic("2026-11"),
        keys.dedupe("web", "k"),
        keys.surveys_due,
        keys.surveys_open,
        keys.supervision,
        keys.survey_outcome("T", 1),
        keys.rates("day", "2026-11-28"),
        keys.review,
        keys.console_session("s"),
        keys.console_login_failures("u"),
        PLAN,
        DISPATCHED_BY_CATEGORY,
        bucket_key(("A2区", "roads")),
        rate_key("webhook", "127.0.0.1"),
        failure_key("127.0.0.1"),
        dispatch_state.SLA_DISPATCH,
        dispatch_state.SLA_FEEDBACK,
        dispatch_state.ACCEPTANCE,
        dispatch_state.COORDINATOR_QUEUE,
        dispatch_state.OUTBOUND_DUE,
        dispatch_state.OUTBOUND_JOBS,
        dispatch_state.queue("d"),
        dispatch_state.outbound_sent("e"),
        insight_state.EPISODES,
        problem_store.PROBLEMS,
        problem_store.PENDING,
        problem_store.VERSION,
        problem_store.ACTIONS,
        insight_state.EMERGING,
        insight_state.FORECAST,
        insight_state.BACKGROUND_LEASE,
        insight_state.hourly_key(datetime(2026, 11, 28).date()),
        insight_state.daily_key(2026, 11),
        insight_state.recent_key("s"),
    ]
    assert [n for n in names if contract.key_of(n) is None] == []
    assert len({contract.key_of(n) for n in names}) == len(contract.REDIS_KEYS), (
        "a declared key nobody spells"
    )


_PYTHON = {
    FieldType.STR: str,
    FieldType.INT: int,
    FieldType.FLOAT: float,
    FieldType.BOOL: bool,
    FieldType.DATETIME: datetime,
    FieldType.STATUS: Status,
}


def _types(annotation: Any) -> set[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {t for a in typing.get_args(annotation) for t in _types(a)} - {type(None)}
    if typing.get_origin(annotation) is typing.Literal:
        return {str}
    return {annotation}


@pytest.mark.parametrize("reader", [Ticket, Assigned, TicketState])
def test_the_typed_readers_of_the_ticket_read_declared_fields_as_their_declared_type(
    reader: type[BaseModel],
) -> None:
    for name, info in reader.model_fields.items():
        if name in ("ticket_id", "exists"):
            continue  # the key itself; whether the hash exists
        declared = contract.FIELDS.get(name)
        assert declared is not None, f"{reader.__name__}.{name} is not in shared/contract.py"
        if declared.type is not FieldType.JSON:
            assert _types(info.annotation) == {_PYTHON[declared.type]}, f"{reader.__name__}.{name}"


def test_the_fields_spelled_by_constant_are_declared() -> None:
    for name in (SIGNATURE_FIELD, ROUND_FIELD, STATUS_FIELD):
        assert name in contract.FIELDS


def test_every_field_and_key_has_one_declaration_and_known_writers() -> None:
    assert len(contract.FIELDS) == len(contract.TICKET_FIELDS)
    assert len({k.pattern for k in contract.REDIS_KEYS}) == len(contract.REDIS_KEYS)
    known = {*contract.SCOPES, contract.ANY}
    for declared in (*contract.TICKET_FIELDS, *contract.REDIS_KEYS):
        assert declared.writers <= known, declared


def test_the_generated_data_contract_document_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/data-contract.md is stale: run `hotline contract`"
    )
