"""Problems in Redis, and opening a proactive work order for one through intake's own accept path.

- `hotline:problems`: problem id -> the problem's JSON. Only insight's background pass (the lease holder)
  writes it, one problem at a time, with the events it raises, in one MULTI/EXEC.
- `hotline:problems:pending`: place-and-topic key -> ticket ids and times not yet a problem.
- `hotline:problems:version`: counts the commits to those two, so the pass that made the last one knows
  its copy of them is still whole and need not read every problem again.
- `hotline:problems:actions`: problem id -> a supervisor's action (the proactive ticket intake opened), which
  the next background pass applies to the problem: intake never rewrites a problem insight may be writing.
- On a member ticket, when its problem is actioned: `problem_id` and `proactive_ticket_id`, with a history
  entry, so its department sees that it is worked as one problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from redis.asyncio import Redis

from services.insight.problems import Problem
from services.intake.writes import Accepted, TicketIntake
from shared import streams
from shared.bus import as_str
from shared.codec import DATA_FIELD, pack
from shared.effects import StoreWrite
from shared.events import Event, Location, ProblemActioned, TicketReceived
from shared.ids import derive_id, ticket_id_for
from shared.status import CLOSED
from shared.store import PREFIX, TicketStore, iso

PROBLEMS = f"{PREFIX}:problems"
PENDING = f"{PREFIX}:problems:pending"
VERSION = f"{PREFIX}:problems:version"
ACTIONS = f"{PREFIX}:problems:actions"
LINKED_MEMBERS = 200  # open members linked to one work order at most (the rest are counted on the problem)


class Action(BaseModel):
    """A supervisor's proactive work order for a problem, waiting to be applied to it."""

    problem_id: str
    round: int
    ticket_id: str
    by: str
    at: datetime
    note: str | None = None


async def load_problems(redis: Redis) -> dict[str, Problem]:
    raw = await redis.hgetall(PROBLEMS)
    return {as_str(k): Problem.model_validate_json(v) for k, v in raw.items()}


async def load_problem(redis: Redis, problem_id: str) -> Problem | None:
    raw = await redis.hget(PROBLEMS, problem_id)
    return None if raw is None else Problem.model_validate_json(raw)


Pending = dict[str, list[tuple[str, float]]]


@dataclass
class Known:
    """The problems and pending tallies as of a version (the count of commits that made them)."""

    version: int
    problems: dict[str, Problem]
    pending: Pending


async def load_known(redis: Redis) -> Known:
    """Every problem and pending tally, with their version, read together."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(VERSION)
        pipe.hgetall(PROBLEMS)
        pipe.hgetall(PENDING)
        version, problems, pending = await pipe.execute()
    return Known(
        version=int(version or 0),
        problems={as_str(k): Problem.model_validate_json(v) for k, v in problems.items()},
        pending={as_str(k): [(t, ts) for t, ts in json.loads(v)] for k, v in pending.items()},
    )


async def version(redis: Redis) -> int:
    return int(await redis.get(VERSION) or 0)


async def take_actions(redis: Redis) -> list[Action]:
    raw = await redis.hgetall(ACTIONS)
    return [Action.model_validate_json(v) for v in raw.values()]


async def commit(
    redis: Redis,
    problems: Iterable[Problem],
    pending: Mapping[str, list[tuple[str, float]] | None],
    events: Iterable[tuple[str, Event]],
    maxlen: int,
    done_actions: Iterable[str] = (),
) -> int:
    """Write the changed problems and pending tallies (None: dropped), publish their events, drop the
    applied actions: all or nothing, so a pass that dies half-way is redone whole by the next one.
    Returns the version the commit made."""
    async with redis.pipeline(transaction=True) as pipe:
        for p in problems:
            pipe.hset(PROBLEMS, p.problem_id, p.model_dump_json())
        if written := {k: v for k, v in pending.items() if v is not None}:
            pipe.hset(PENDING, mapping={k: json.dumps(v) for k, v in written.items()})
        if dropped := [k for k, v in pending.items() if v is None]:
            pipe.hdel(PENDING, *dropped)
        for stream, event in events:
            pipe.xadd(stream, {DATA_FIELD: pack(event)}, maxlen=maxlen, approximate=True)
        for problem_id in done_actions:
            pipe.hdel(ACTIONS, problem_id)
        pipe.incr(VERSION)
        *_, made = await pipe.execute()
    return int(made)


def proactive_ticket(problem: Problem, now: datetime) -> TicketReceived:
    """The work order's event: a ticket like a citizen's, on the same path, with the problem as its text."""
    source_id = f"{problem.problem_id}:{problem.round}"
    ticket_id = ticket_id_for("proactive", source_id)
    where = problem.place.split(":", 1)[-1] if problem.place else problem.district or "the city"
    text = (
        f"【未诉先办】{problem.label} — {problem.tickets} calls about {where} ({problem.category}) since "
        f"{problem.first_seen:%Y-%m-%d}. Evidence: {'; '.join(problem.evidence[-3:])}. "
        f"Please fix the cause; the calls are linked to this order."
    )
    return TicketReceived(
        event_id=derive_id(ticket_id, "received"),
        ticket_id=ticket_id,
        occurred_at=now,
        channel="proactive",
        source_id=source_id,
        title=f"【未诉先办】{problem.label}"[:200],
        text=text,
        service_code=problem.category,
        location=Location(address=where) if problem.place else None,
        received_at=now,
        attributes={"problem_id": [problem.problem_id], "members": problem.ticket_ids[-50:]},
    )


def actioned_event(problem: Problem, by: str, ticket_id: str, now: datetime) -> ProblemActioned:
    fields = problem.event_fields("actioned", now) | {"status": "actioned"}
    return ProblemActioned(**fields, proactive_ticket_id=ticket_id, by=by, round=problem.round)


async def open_work_order(redis: Redis, problem: Problem, by: str, now: datetime, maxlen: int) -> str:
    """Open the problem's proactive ticket through intake's accept script (the same de-duplication, ticket
    write and tickets.received event as a citizen's call: dispatch's deadlines, rejections and escalation
    apply) and link its open members to it. A retry finds the same ticket. Returns its id."""
    event = proactive_ticket(problem, now)
    accepted = await TicketIntake(redis, maxlen).accept(event)
    ticket_id = accepted.ticket_id if isinstance(accepted, Accepted) else event.ticket_id
    await link_members(redis, problem, ticket_id, now)
    return ticket_id


# The action is recorded and announced together, once: a retry (or a second supervisor) records nothing.
_RECORD_ACTION = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', '__data__', ARGV[3])
return 1
"""


async def request_action(
    redis: Redis, problem: Problem, by: str, now: datetime, maxlen: int, note: str | None = None
) -> tuple[Action, bool]:
    """A supervisor's order: open the ticket, record the action for insight and announce it, once per
    problem and round. Returns the action and whether it is new."""
    ticket_id = await open_work_order(redis, problem, by, now, maxlen)
    action = Action(
        problem_id=problem.problem_id, round=problem.round, ticket_id=ticket_id, by=by, at=now, note=note
    )
    event = actioned_event(problem, by, ticket_id, now)
    new = await redis.eval(
        _RECORD_ACTION,
        2,
        ACTIONS,
        streams.PROBLEMS_ACTIONED,
        problem.problem_id,
        action.model_dump_json(),
        pack(event),
        maxlen,
    )
    return action, bool(new)


async def link_members(redis: Redis, problem: Problem, ticket_id: str, now: datetime) -> int:
    """Mark the members still open as worked through the work order; returns how many."""
    store = TicketStore(redis)
    members = problem.ticket_ids[-LINKED_MEMBERS:]
    found = await store.get_many(members, fields=("status",))
    linked = 0
    async with redis.pipeline(transaction=False) as pipe:
        for member, ticket in zip(members, found, strict=True):
            if ticket is None or ticket.status in CLOSED:
                continue
            write = StoreWrite(
                ticket_id=member,
                event_id=derive_id(ticket_id, "linked", member),
                fields={"problem_id": problem.problem_id, "proactive_ticket_id": ticket_id},
                history={
                    "at": iso(now),
                    "event": "linked",
                    "summary": f"part of problem {problem.label!r}, worked as proactive ticket {ticket_id}",
                },
            )
            await store.apply(write, scope="insight", pipe=pipe)
            linked += 1
        await pipe.execute()
    return linked
