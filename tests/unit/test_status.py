"""The status machine: every status dispatch writes is a move `shared.status.TRANSITIONS` allows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.dispatch.handlers import on_reopened, on_rerouted, on_updated
from shared.effects import Effects
from shared.status import ACTIVE, CLOSED, TRANSITIONS, IllegalTransitionError, Status, moved
from tests.unit.test_dispatch import MONDAY_10H, TABLE, FakeSupply, assigned, reopened, rerouted, update

LATER = MONDAY_10H + timedelta(days=1)


def _written(effects: Effects) -> Status | None:
    status = effects.writes[0].fields.get("status") if effects.writes else None
    return Status(status) if status else None


def _every_move_from(current: Status) -> list[Effects]:
    # accepted_at only where the status implies it: the handlers read it to tell a repeat accept apart.
    signed = {"accepted_at": MONDAY_10H} if current in (Status.ACCEPTED, Status.RESOLVED) else {}
    ticket = assigned("water", status=current, **signed)
    kw = {"ticket": ticket, "table": TABLE, "now": LATER}
    out = [on_updated(update(a, "water"), supply=FakeSupply(), **kw) for a in ("accept", "resolve", "reject")]
    out.append(on_rerouted(rerouted("parks"), supply=FakeSupply(), **kw))
    out.append(on_reopened(reopened(), supply=FakeSupply(), **kw))
    return out


@pytest.mark.parametrize("current", [s for s in Status if s is not Status.DUPLICATE])
def test_every_status_dispatch_writes_is_an_allowed_move(current: Status) -> None:
    written = [s for effects in _every_move_from(current) if (s := _written(effects))]
    assert written, f"dispatch wrote no status from {current}"
    for status in written:
        assert status in TRANSITIONS[current], f"{current} -> {status}"


def test_a_move_the_table_does_not_list_is_refused_with_both_statuses_named() -> None:
    ticket = assigned("water", status=Status.DUPLICATE)
    with pytest.raises(IllegalTransitionError, match="from duplicate to dispatched"):
        on_reopened(reopened(), ticket=ticket, table=TABLE, supply=FakeSupply(), now=LATER)
    assert moved("resolved", Status.DISPATCHED) is Status.DISPATCHED


def test_closed_and_active_statuses_are_apart_and_a_closed_one_leads_only_to_a_redispatch() -> None:
    assert not ACTIVE & CLOSED
    assert set(TRANSITIONS) == set(Status)
    for status in CLOSED:
        assert TRANSITIONS[status] <= {Status.DISPATCHED, Status.COORDINATOR}
