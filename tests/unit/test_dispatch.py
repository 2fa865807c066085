"""Dispatch without Redis: the routing file, assignment, and the handlers with an in-memory supply."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.dispatch import state
from services.dispatch.assign import Counts, Demand, assign, candidates
from services.dispatch.handlers import Assigned, on_classified, on_reopened, on_rerouted, on_updated
from services.dispatch.routing import (
    Department,
    RoutingSource,
    RoutingTable,
    Rule,
    WorkingHours,
    load_routing,
)
from services.dispatch.sla import deadlines
from shared import streams
from shared.effects import HashSet, Increment, SortedAdd, SortedRemove
from shared.events import (
    Place,
    TicketClassified,
    TicketDispatched,
    TicketReopened,
    TicketRerouted,
    TicketUpdated,
)
from shared.outbound import backoff
from shared.settings import DATA_DIR
from shared.store import keys
from shared.taxonomy import ConfigError, load_taxonomy

MONDAY_10H = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
OFFICE = WorkingHours(days=["mon", "tue", "wed", "thu", "fri"], open=time(9), close=time(18))


class FakeSupply:
    """Open tickets per department (all counted as ahead) and learned counts; records assignments."""

    def __init__(self, open_: dict[str, int] | None = None, counts: dict[str, Counts] | None = None) -> None:
        self.open = defaultdict(int, open_ or {})
        self.counts = counts or {}

    def ahead(self, department: str, due: datetime) -> int:
        return self.open[department]

    def acceptance(self, department: str, category: str, district: str | None) -> Counts:
        return self.counts.get(department, Counts())

    def added(self, department: str, due: datetime) -> None:
        self.open[department] += 1


TABLE = RoutingTable(
    departments=[
        Department(id="water", name="Water", categories=["utilities"], capacity=24),
        Department(id="east_water", name="East water", districts=["east"], capacity=48),
        Department(
            id="street_donghu", name="East street office", categories=["utilities"], districts=["east"]
        ),
        Department(id="parks", name="Parks", categories=["environment"], capacity=9, hours=OFFICE),
        Department(id="street_xishan", name="West street office", categories=["environment"], capacity=9),
        Department(id="hooked", name="Has a webhook", webhook_url="http://127.0.0.1:9/x", token_env="X"),
        Department(id="coord", name="Coordinator"),
    ],
    rules=[
        Rule(category="utilities", department="water", priority=10),
        Rule(category="utilities", district="east", department="east_water", priority=20),
        Rule(category="environment", department="parks", priority=10),
        Rule(category="health", department="hooked", priority=10),
    ],
    fallbacks={"east": "street_donghu"},
    fallback="coord",
    coordinator="coord",
    max_rejections=3,
)


def classified(
    category: str = "utilities",
    urgency: str = "general",
    district: str | None = None,
    duplicate_of: str | None = None,
    ticket_id: str = "T1",
) -> TicketClassified:
    return TicketClassified(
        event_id=f"c-{ticket_id}",
        ticket_id=ticket_id,
        occurred_at=MONDAY_10H,
        category=category,
        confidence=0.9,
        urgency=urgency,
        place=Place(district=district),
        model_version="m",
        received_at=MONDAY_10H,
        duplicate_of=duplicate_of,
    )


def demand(category: str = "utilities", district: str | None = None, urgency: str = "general") -> Demand:
    d, f = deadlines(urgency, MONDAY_10H)  # type: ignore[arg-type]
    return Demand(category, district, d, f)


def assigned(department: str, **over: object) -> Assigned:
    d, f = deadlines("general", MONDAY_10H)
    data: dict[str, object] = dict(
        ticket_id="T1",
        status="dispatched",
        department=department,
        category="utilities",
        district="east",
        urgency="general",
        received_at=MONDAY_10H,
        dispatch_due_at=d,
        feedback_due_at=f,
        attempt=1,
    )
    data.update(over)
    return Assigned.model_validate(data)


def update(action: str, department: str, n: int = 1) -> TicketUpdated:
    return TicketUpdated(
        event_id=f"u-{n}",
        ticket_id="T1",
        occurred_at=MONDAY_10H,
        department=department,
        action=action,  # type: ignore[arg-type]
        note="not ours",
    )


# -- the routing file ------------------------------------------------------------------------------


def test_the_default_routing_file_is_valid_and_covers_every_category_and_district() -> None:
    table = load_routing(DATA_DIR / "routing.yaml")
    for code in load_taxonomy(DATA_DIR / "taxonomy.yaml").codes():
        for district in ("nangang", "donghu", "xishan", "beiyuan"):
            assert candidates(table, code, district), (code, district)
            assert table.fallback_for(district).startswith("street_")
    assert {"urban_management", "water_utility", "city_coordination"} <= {d.id for d in table.departments}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
coordinator: coord
fallback: coord
departments:
  - id: coord
    name: Coordinator
  - id: water
    name: Water
    capacity: 10
rules:
  - {category: utilities, department: water}
"""


def test_routing_errors_name_the_file_the_line_and_the_problem(tmp_path: Path) -> None:
    bad = GOOD.replace("capacity: 10", "capacity: lots").replace("department: water}", "department: wter}")
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError) as info:
        load_routing(path)
    message = str(info.value)
    assert f"{path}:8: departments.1.capacity: Input should be a valid integer" in message
    # Cross-references are checked once the shapes are valid: fix the first problem to see the next.
    path.write_text(bad.replace("capacity: lots", "capacity: 10"), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}:10: rules\.0\.department: unknown department 'wter'"):
        load_routing(path)


def test_a_missing_field_points_at_its_enclosing_entry_and_a_secret_must_be_a_reference(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, GOOD.replace("  - id: water\n    name: Water\n", "  - id: water\n"))
    with pytest.raises(ConfigError, match=rf"{path}:6: departments\.1\.name: Field required"):
        load_routing(path)
    hooked = GOOD.replace("capacity: 10", "capacity: 10\n    webhook_url: https://water.example/hook")
    with pytest.raises(
        ConfigError, match=r":9: departments\.1\.webhook_url: a webhook_url needs a token_env"
    ):
        load_routing(write(tmp_path, hooked))
    with_env = hooked + ""
    with_env = with_env.replace("/hook", "/hook\n    token_env: WATER_SECRET")
    with pytest.raises(ConfigError, match=r":10: departments\.1\.token_env: .*WATER_SECRET is not set"):
        load_routing(write(tmp_path, with_env), env={})
    assert load_routing(write(tmp_path, with_env), env={"WATER_SECRET": "s"}).departments[1].token_env
    with pytest.raises(ConfigError, match=r":3: not valid YAML"):
        load_routing(write(tmp_path, "a: 1\nb: [\nc: {"))


def test_a_routing_change_is_picked_up_and_a_broken_one_keeps_the_table_in_use(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    outcomes: list[str] = []
    source = RoutingSource(path, on_reload=outcomes.append)
    assert source.refresh().department("water").capacity == 10  # type: ignore[union-attr]
    path.write_text(GOOD.replace("capacity: 10", "capacity: 20"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a distinct mtime, however fast the test runs
    assert source.refresh().department("water").capacity == 20  # type: ignore[union-attr]
    path.write_text(GOOD.replace("capacity: 10", "capacity: -1"), encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert source.refresh().department("water").capacity == 20  # type: ignore[union-attr]
    assert outcomes == ["ok", "invalid"]


def test_working_hours_count_only_open_time() -> None:
    friday_17h = datetime(2026, 12, 4, 17, 0, tzinfo=TABLE.zone())
    assert OFFICE.is_open(friday_17h)
    # Two hours of work from Friday 17:00: one on Friday, the next on Monday from 09:00.
    assert OFFICE.finish(friday_17h, 2.0) == datetime(2026, 12, 7, 10, 0, tzinfo=TABLE.zone())
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=TABLE.zone())
    assert not OFFICE.is_open(saturday)
    assert OFFICE.finish(saturday, 0.0) == datetime(2026, 12, 7, 9, 0, tzinfo=TABLE.zone())
    assert WorkingHours().finish(saturday, 30.0) == saturday + timedelta(hours=30)


def test_working_hours_are_counted_in_the_zone_and_from_the_time_they_are_asked_about() -> None:
    shanghai, berlin = TABLE.zone(), ZoneInfo("Europe/Berlin")
    for zone in (shanghai, berlin, shanghai):  # the same days asked again, and in another zone in between
        friday_17h = datetime(2026, 12, 4, 17, 0, tzinfo=zone)
        monday_10h = datetime(2026, 12, 7, 10, 0, tzinfo=zone)
        assert OFFICE.open_hours(friday_17h, monday_10h) == 2.0  # 17-18 on Friday, 9-10 on Monday
        assert (
            OFFICE.open_hours(friday_17h + timedelta(minutes=30), monday_10h - timedelta(minutes=45)) == 0.75
        )
        assert OFFICE.open_hours(monday_10h, monday_10h + timedelta(weeks=1)) == 45.0
        signs = OFFICE.finish(datetime(2026, 12, 5, 12, 0, tzinfo=zone), 0.0)
        assert signs == datetime(2026, 12, 7, 9, 0, tzinfo=zone) and signs.tzinfo is zone


def test_a_batch_counts_what_it_assigned_ahead_of_each_deadline_in_any_order() -> None:
    due = [MONDAY_10H + timedelta(hours=h) for h in (0, 1, 2, 3)]
    supply = state.Snapshot({("roads", due[2].timestamp()): 5}, {})
    for h in (3, 0, 2, 1, 2):
        supply.added("roads", due[h])
    assert supply.ahead("roads", due[2]) == 5 + 4  # read from Redis, plus the batch's due by then
    assert supply.ahead("roads", due[0]) == 1 and supply.ahead("parks", due[3]) == 0


# -- assignment ------------------------------------------------------------------------------------


def test_the_top_rule_wins_while_it_can_keep_the_deadline_and_the_reason_says_why() -> None:
    chosen = assign(TABLE, demand(district="east"), FakeSupply(), MONDAY_10H)
    assert chosen is not None and chosen.department == "east_water"
    assert chosen.reason.startswith("east_water: rule priority 20, 0 ahead of 48/day, open now")
    assert "next water" in chosen.reason


def test_an_overloaded_owner_loses_to_a_department_that_can_still_keep_the_deadline() -> None:
    # 340 tickets ahead at 48/day is 7+ days of work: past the 7-day feedback deadline.
    chosen = assign(TABLE, demand(district="east"), FakeSupply({"east_water": 340}), MONDAY_10H)
    assert chosen is not None and chosen.department == "water"
    assert "breach risk 0.00" in chosen.reason and "next" in chosen.reason
    assert next(e for e in chosen.estimates if e.candidate.department == "east_water").risk > 0.3


def test_a_department_that_keeps_rejecting_this_kind_of_ticket_is_avoided() -> None:
    supply = FakeSupply(counts={"east_water": Counts(accepts=1, rejects=30)})
    chosen = assign(TABLE, demand(district="east"), supply, MONDAY_10H)
    assert chosen is not None and chosen.department == "water"
    assert chosen.estimates[1].accept_rate < 0.2


def test_an_emergency_at_night_goes_to_whoever_is_open() -> None:
    saturday_night = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # 22:00 local, parks closed until Monday
    d, f = deadlines("emergency", saturday_night)
    chosen = assign(TABLE, Demand("environment", None, d, f), FakeSupply(), saturday_night)
    assert chosen is not None and chosen.department == "street_xishan"
    assert chosen.reason.endswith("next parks (eta 35.7h, risk 1.00)")


def test_rejecters_are_excluded_then_the_fallback_then_no_one() -> None:
    east = demand(district="east")
    chosen = assign(TABLE, east, FakeSupply(), MONDAY_10H, exclude=["east_water", "water"])
    assert chosen is not None and chosen.department == "street_donghu"
    assert assign(TABLE, demand("health", "east"), FakeSupply(), MONDAY_10H, exclude=["hooked"]) is not None
    assert assign(TABLE, demand("health"), FakeSupply(), MONDAY_10H, exclude=["hooked", "coord"]) is None


# -- handlers --------------------------------------------------------------------------------------


def test_a_classified_ticket_is_dispatched_with_deadlines_reason_queue_and_timers() -> None:
    effects = on_classified(
        classified(urgency="emergency", district="east"),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
        previous=None,
    )
    [publish] = effects.publish
    out = publish.event
    assert publish.stream == streams.DISPATCHED and isinstance(out, TicketDispatched)
    assert (out.department, out.attempt) == ("east_water", 1)
    assert out.dispatch_due_at == MONDAY_10H + timedelta(hours=1)
    assert out.feedback_due_at == MONDAY_10H + timedelta(hours=2)
    [write] = effects.writes
    assert write.fields["status"] == "dispatched" and write.fields["dispatch_reason"] == out.reason
    assert SortedAdd(state.SLA_DISPATCH, "T1", out.dispatch_due_at.timestamp()) in write.ops
    assert SortedAdd(state.SLA_FEEDBACK, "T1", out.feedback_due_at.timestamp()) in write.ops
    assert SortedAdd(keys.department_open("east_water"), "T1", MONDAY_10H.timestamp()) in write.ops
    assert not any(op.key == state.OUTBOUND_DUE for op in write.ops)


def test_a_batch_spreads_over_departments_as_it_fills_them() -> None:
    supply = FakeSupply({"east_water": 20})
    chosen = [
        on_classified(
            classified(district="east", ticket_id=f"T{i}"),
            table=TABLE,
            supply=supply,
            now=MONDAY_10H,
            previous=None,
        )
        .writes[0]
        .fields["department"]
        for i in range(30)
    ]
    assert {"east_water", "water"} <= set(chosen)


def test_a_department_with_a_webhook_gets_a_delivery_queued_in_the_same_write() -> None:
    effects = on_classified(
        classified("health"), table=TABLE, supply=FakeSupply(), now=MONDAY_10H, previous=None
    )
    event_id = effects.publish[0].event.event_id
    ops = effects.writes[0].ops
    assert SortedAdd(state.OUTBOUND_DUE, event_id, MONDAY_10H.timestamp()) in ops
    job = next(op for op in ops if isinstance(op, HashSet) and op.key == state.OUTBOUND_JOBS)
    assert state.OutboundJob.model_validate_json(job.value).department == "hooked"


def test_duplicates_are_linked_not_dispatched() -> None:
    effects = on_classified(
        classified(duplicate_of="T0"), table=TABLE, supply=FakeSupply(), now=MONDAY_10H, previous=None
    )
    assert effects.publish == ()
    link, original = effects.writes
    assert link.fields["status"] == "duplicate" and link.fields["duplicate_of"] == "T0"
    assert link.ops == [SortedRemove(keys.review, link.ticket_id)]  # closed: off the review queue
    assert original.ticket_id == "T0" and original.history and original.history["event"] == "repeated"
    assert original.ops == [Increment(keys.ticket("T0"), "repeat_count")]


def test_accept_and_resolve_set_times_clear_timers_and_learn() -> None:
    accept = on_updated(
        update("accept", "east_water"),
        ticket=assigned("east_water"),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    )
    [write] = accept.writes
    assert write.fields["status"] == "accepted" and write.fields["accepted_at"]
    assert SortedRemove(state.SLA_DISPATCH, "T1") in write.ops
    assert Increment(state.ACCEPTANCE, "east_water|utilities|east|a") in write.ops
    resolved = on_updated(
        update("resolve", "east_water", 2),
        ticket=assigned("east_water", status="accepted", accepted_at=MONDAY_10H),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    ).writes[0]
    assert resolved.fields["status"] == "resolved"
    assert SortedRemove(keys.department_open("east_water"), "T1") in resolved.ops
    assert SortedRemove(state.SLA_FEEDBACK, "T1") in resolved.ops
    assert SortedRemove(keys.review, "T1") in resolved.ops  # closed: nothing left for an operator to review
    assert not any(isinstance(op, Increment) for op in resolved.ops), "the accept was already counted"


def test_an_action_from_a_department_the_ticket_is_not_with_changes_nothing() -> None:
    effects = on_updated(
        update("resolve", "water"),
        ticket=assigned("east_water"),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    )
    [write] = effects.writes
    assert write.fields == {} and not write.ops and "ignored" in str(write.history)


def test_a_rejection_redispatches_to_someone_new_and_n_rejections_go_to_the_coordinator() -> None:
    effects = on_updated(
        update("reject", "east_water"),
        ticket=assigned("east_water", rejections=1, rejected_by="water", attempt=2),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    )
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched)
    assert (out.department, out.attempt) == ("street_donghu", 3)
    write = effects.writes[0]
    assert write.fields["rejected_by"] == "water,east_water" and write.fields["rejections"] == "2"
    assert write.fields["status"] == "dispatched" and write.fields["accepted_at"] is None
    assert Increment(state.ACCEPTANCE, "east_water|utilities|east|r") in write.ops
    assert SortedRemove(keys.department_open("east_water"), "T1") in write.ops
    again = on_updated(
        update("reject", "east_water"),
        ticket=assigned("east_water", rejections=1, rejected_by="water", attempt=2),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    )
    assert again.publish[0].event.event_id == out.event_id, "a retried batch republishes the same id"

    third = on_updated(
        update("reject", "street_donghu", 3),
        ticket=assigned("street_donghu", rejections=2, rejected_by="water,east_water", attempt=3),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    )
    assert third.writes[0].fields["status"] == "coordinator"
    assert third.publish[0].event.department == "coord"  # type: ignore[attr-defined]
    assert SortedAdd(state.COORDINATOR_QUEUE, "T1", MONDAY_10H.timestamp()) in third.writes[0].ops


def reopened(n: int = 1) -> TicketReopened:
    return TicketReopened(
        event_id=f"r-{n}", ticket_id="T1", occurred_at=MONDAY_10H, reason="citizen: not fixed", reopen_count=n
    )


def test_a_reopened_ticket_goes_back_to_its_department_unless_that_one_rejected_it() -> None:
    later = MONDAY_10H + timedelta(days=3)
    ticket = assigned(
        "water", status="resolved", accepted_at=MONDAY_10H, rejected_by="east_water", rejections=1
    )
    effects = on_reopened(reopened(), ticket=ticket, table=TABLE, supply=FakeSupply(), now=later)
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched)
    assert out.department == "water" and out.attempt == 2 and "back to water" in out.reason
    assert out.feedback_due_at == later + timedelta(days=7)
    fields = effects.writes[0].fields
    assert (
        fields["status"] == "dispatched" and fields["accepted_at"] is None and fields["reopen_count"] == "1"
    )

    rejected_last = assigned("water", status="resolved", rejected_by="water")
    out2 = on_reopened(reopened(2), ticket=rejected_last, table=TABLE, supply=FakeSupply(), now=later)
    assert out2.publish[0].event.department == "east_water"  # type: ignore[attr-defined]


def rerouted(department: str, n: int = 1) -> TicketRerouted:
    return TicketRerouted(
        event_id=f"m-{n}",
        ticket_id="T1",
        occurred_at=MONDAY_10H,
        operator="op-1",
        department=department,
        reason="this is a housing estate's pipe",
    )


def test_an_operators_rerouting_moves_the_ticket_and_teaches_the_router() -> None:
    ticket = assigned("water", accepted_at=MONDAY_10H)
    effects = on_rerouted(
        rerouted("east_water"), ticket=ticket, table=TABLE, supply=FakeSupply(), now=MONDAY_10H
    )
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched)
    assert (out.department, out.attempt) == ("east_water", 2)
    assert "re-routed by op-1" in out.reason
    write = effects.writes[0]
    assert write.fields["accepted_at"] is None and write.fields["rerouted_by"] == "op-1"
    # The department it left counts a rejection for this category and district: the router learns.
    learned = state.acceptance_field("water", "utilities", "east", "r")
    assert Increment(state.ACCEPTANCE, learned) in write.ops


def test_a_corrected_category_is_routed_again_without_teaching_the_router() -> None:
    # The operator corrected utilities -> environment: the ticket (read with the new category) moves.
    ticket = assigned("water", category="environment", district=None, accepted_at=MONDAY_10H)
    event = rerouted("water").model_copy(update={"department": None, "category": "environment"})
    effects = on_rerouted(event, ticket=ticket, table=TABLE, supply=FakeSupply(), now=MONDAY_10H)
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched) and out.department == "parks"
    assert not any(isinstance(op, Increment) and op.key == state.ACCEPTANCE for op in effects.writes[0].ops)
    # A correction to a category the same department handles keeps the ticket where it is.
    kept = on_rerouted(
        event.model_copy(update={"category": "utilities"}),
        ticket=assigned("east_water"),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
    )
    assert kept.publish == () and "kept with east_water" in str(kept.writes[0].history)


def test_a_raised_urgency_is_routed_again_with_the_emergency_deadlines_from_the_call() -> None:
    # The urgency reviewer raised it (the store says emergency; the deadlines are still general's).
    ticket = assigned("east_water", urgency="emergency", accepted_at=MONDAY_10H)
    event = rerouted("east_water").model_copy(update={"department": None, "operator": "urgency-review"})
    now = MONDAY_10H + timedelta(minutes=10)
    effects = on_rerouted(event, ticket=ticket, table=TABLE, supply=FakeSupply(), now=now)
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched)
    # The same department (the category routes there), told again, with the deadlines of an emergency.
    assert (out.department, out.urgency, out.attempt) == ("east_water", "emergency", 2)
    assert out.dispatch_due_at == MONDAY_10H + timedelta(hours=1)
    assert out.feedback_due_at == MONDAY_10H + timedelta(hours=2)
    ops = effects.writes[0].ops
    assert SortedAdd(state.SLA_DISPATCH, "T1", (MONDAY_10H + timedelta(hours=1)).timestamp()) in ops
    assert effects.writes[0].fields["dispatch_due_at"] == (MONDAY_10H + timedelta(hours=1)).isoformat()
    # Not the router's mistake: nothing learned against the department.
    assert not any(isinstance(op, Increment) and op.key == state.ACCEPTANCE for op in ops)
    # Raised late (dispatch behind): the hour has passed, and the timer is set for the scan to escalate.
    late = MONDAY_10H + timedelta(minutes=70)
    ops = on_rerouted(event, ticket=ticket, table=TABLE, supply=FakeSupply(), now=late).writes[0].ops
    assert SortedAdd(state.SLA_DISPATCH, "T1", (MONDAY_10H + timedelta(hours=1)).timestamp()) in ops


def test_a_raise_filed_under_the_hazards_category_moves_with_the_emergency_deadlines() -> None:
    # The reviewer raised it and filed it under the category whose departments act on its hazard (the
    # ticket is read with the event's category): it leaves water for parks, due an hour after the call.
    ticket = assigned("water", category="environment", district=None, urgency="emergency")
    event = rerouted("water").model_copy(
        update={"department": None, "category": "environment", "operator": "urgency-review"}
    )
    late = MONDAY_10H + timedelta(minutes=70)
    effects = on_rerouted(event, ticket=ticket, table=TABLE, supply=FakeSupply(), now=late)
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched)
    assert (out.department, out.urgency, out.attempt) == ("parks", "emergency", 2)
    assert out.dispatch_due_at == MONDAY_10H + timedelta(hours=1)
    ops = effects.writes[0].ops
    # The hour has passed: the timer is set for the scan to escalate; the router is not blamed.
    assert SortedAdd(state.SLA_DISPATCH, "T1", (MONDAY_10H + timedelta(hours=1)).timestamp()) in ops
    assert not any(isinstance(op, Increment) and op.key == state.ACCEPTANCE for op in ops)


def test_deadlines_by_urgency_count_from_the_last_reopening_and_never_move_later() -> None:
    reopened = MONDAY_10H + timedelta(days=3)
    d, f = deadlines("general", reopened)
    ticket = assigned(
        "east_water", urgency="emergency", reopened_at=reopened, dispatch_due_at=d, feedback_due_at=f
    )
    event = rerouted("east_water").model_copy(update={"department": None})
    out = on_rerouted(event, ticket=ticket, table=TABLE, supply=FakeSupply(), now=reopened).publish[0].event
    assert isinstance(out, TicketDispatched) and out.dispatch_due_at == reopened + timedelta(hours=1)
    # An urgency lower than the deadlines kept (a general ticket with an emergency's) changes nothing.
    tight = assigned("east_water", dispatch_due_at=MONDAY_10H + timedelta(hours=1))
    kept = on_rerouted(event, ticket=tight, table=TABLE, supply=FakeSupply(), now=MONDAY_10H)
    assert kept.publish == () and "kept with east_water" in str(kept.writes[0].history)


def test_an_urgency_raised_before_dispatch_read_the_classification_sets_the_deadlines() -> None:
    effects = on_classified(
        classified(district="east"),
        table=TABLE,
        supply=FakeSupply(),
        now=MONDAY_10H,
        previous=None,
        urgency="emergency",
    )
    out = effects.publish[0].event
    assert isinstance(out, TicketDispatched) and out.urgency == "emergency"
    assert out.dispatch_due_at == MONDAY_10H + timedelta(hours=1)
    # The store's urgency is the classifier's (or the reviewer's raise): dispatch never writes it back.
    assert "urgency" not in effects.writes[0].fields


@pytest.mark.parametrize(
    ("ticket", "target"),
    [
        (None, "east_water"),
        (assigned("water", status="resolved"), "east_water"),
        (assigned("water"), "water"),
        (assigned("water"), "no_such_department"),
    ],
)
def test_a_rerouting_that_cannot_apply_is_only_recorded(ticket: Assigned | None, target: str) -> None:
    effects = on_rerouted(rerouted(target), ticket=ticket, table=TABLE, supply=FakeSupply(), now=MONDAY_10H)
    assert effects.publish == ()
    assert effects.writes[0].history is not None and "ignored" in str(effects.writes[0].history["summary"])


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff(n, 2.0, 60.0, rng) for n in range(1, 8)]
    assert 1.0 <= delays[0] <= 2.0 and 4.0 <= delays[2] <= 8.0
    assert all(30.0 <= d <= 60.0 for d in delays[5:])
    assert len({round(backoff(3, 2.0, 60.0, rng), 6) for _ in range(10)}) > 1


@pytest.mark.parametrize(
    ("ticket", "forwarded_to", "kept"),
    [
        (assigned("hooked"), "hooked", True),  # its webhook gets the comment
        (assigned("water"), None, True),  # no webhook: its queue shows the comment
        (assigned("water", status="resolved"), None, True),  # a closed ticket still hears from the citizen
        (assigned("", status="received"), None, True),  # kept for whoever gets it
        (None, None, False),
    ],
)
def test_a_citizen_s_comment_goes_to_the_department_that_has_the_ticket_now(
    ticket: Assigned | None, forwarded_to: str | None, kept: bool
) -> None:
    comment = update("comment", "water").model_copy(
        update={"note": "still leaking", "citizen_status": "open", "media_url": "https://x.example/1.jpg"}
    )
    effects = on_updated(comment, ticket=ticket, table=TABLE, supply=FakeSupply(), now=MONDAY_10H)
    [write] = effects.writes
    assert not effects.publish and write.history is not None and write.history["event"] == "comment"
    assert "status" not in write.fields and "department" not in write.fields  # dispatch's, not the citizen's
    if kept:
        assert write.fields["citizen_comment"] == "still leaking"
        assert write.fields["citizen_media_url"] == "https://x.example/1.jpg"
    else:
        assert write.fields == {}
    jobs = [op for op in write.ops if isinstance(op, HashSet) and op.key == state.OUTBOUND_JOBS]
    if forwarded_to is None:
        assert jobs == []
    else:
        [job] = jobs
        sent = state.OutboundJob.model_validate_json(job.value)
        body = TicketUpdated.model_validate_json(sent.body)
        assert (sent.department, body.department, body.action) == (forwarded_to, forwarded_to, "comment")
