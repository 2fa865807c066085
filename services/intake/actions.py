"""What people do to tickets, shared by intake's API routes and the console, so both publish the same
events with the same checks: a department accepts, rejects or resolves; an operator corrects a category
(a training label, and a re-dispatch when the category routes elsewhere) or re-routes a ticket.

Each action answers what happened, or raises `HttpError` with the precise refusal (404 unknown ticket,
403 not the department's, 409 closed, 422 unknown category or department, 429, 503 Redis unreachable).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from services.intake.http import HttpError, available
from services.intake.writes import EventPublisher, Published, RateLimited
from shared import contract, streams
from shared.effects import SortedRemove, StoreWrite, StreamAdd
from shared.events import DepartmentAction, Event, TicketRerouted, TicketUpdated, utcnow
from shared.ids import derive_id
from shared.pii import masked
from shared.status import CLOSED
from shared.store import Ticket, TicketStore, iso, keys


class Corrected(BaseModel):
    ticket_id: str
    category: str
    previous: str | None
    duplicate: bool


def too_many(limited: RateLimited) -> HttpError:
    return HttpError(
        429,
        "rate_limited",
        f"too many requests from this source, retry in {limited.retry_after} s",
        headers={"Retry-After": str(limited.retry_after)},
    )


class Actions:
    def __init__(
        self,
        redis: Redis,
        *,
        stream_maxlen: int,
        categories: Collection[str],
        departments: Collection[str],
        count: Callable[[str, str], None] = lambda kind, outcome: None,
    ) -> None:
        self.store = TicketStore(redis)
        self.publisher = EventPublisher(redis, stream_maxlen)
        self.stream_maxlen = stream_maxlen
        self.categories, self.departments = set(categories), set(departments)
        self._count = count

    async def publish_once(self, kind: str, stream: str, event: Event, **options: Any) -> Published:
        """Publish an event about an existing ticket once (see `EventPublisher.publish_once`); 404 when
        the ticket is unknown, 429 when the source is over its limit."""
        result = await available(self.publisher.publish_once(stream, event, **options))
        if isinstance(result, RateLimited):
            raise too_many(result)
        self._count(kind, result.outcome)
        if result.outcome == "missing":
            raise HttpError(404, "unknown_ticket", f"no ticket {event.ticket_id}")
        return result

    async def _ticket(self, ticket_id: str) -> Ticket:
        ticket = await available(self.store.get(ticket_id))
        if ticket is None:
            raise HttpError(404, "unknown_ticket", f"no ticket {ticket_id}")
        return ticket

    async def department_action(
        self, dept: str, ticket_id: str, action: DepartmentAction, note: str | None, key: str | None
    ) -> Published:
        """Accept, reject (a note required), resolve or note a ticket assigned to `dept`."""
        note = masked(note).strip() if note else None  # no personal data in notes (intake's rule)
        note = note or None
        if action in ("reject", "note") and note is None:
            raise HttpError(
                422,
                "invalid_payload",
                f"a note is required to {action}",
                [{"field": "note", "problem": f"a note is required to {action}", "type": "missing"}],
            )
        ticket = await self._ticket(ticket_id)
        if ticket.department != dept:
            raise HttpError(403, "not_your_ticket", "the ticket is not assigned to this department")
        refused = CLOSED if action != "note" else frozenset()
        if ticket.status in refused:
            raise HttpError(409, "ticket_closed", f"the ticket is {ticket.status}")
        event = TicketUpdated(
            event_id=_department_event_id(ticket, dept, action, note, key),
            ticket_id=ticket_id,
            occurred_at=utcnow(),
            department=dept,
            action=action,
            note=note,
        )
        result = await self.publish_once(
            "department",
            streams.UPDATED,
            event,
            history={"event": f"department_{action}", "summary": f"{dept}: {(note or action)[:200]}"},
            department=dept,
            refuse_statuses=refused,
        )
        if result.outcome == "forbidden":
            raise HttpError(403, "not_your_ticket", "the ticket is not assigned to this department")
        if result.outcome == "conflict":
            raise HttpError(409, "ticket_closed", f"the ticket is {result.detail}")
        return result

    async def correct_category(
        self, operator: str, ticket_id: str, category: str, key: str | None
    ) -> Corrected:
        """Set the category (the same one confirms it): stored as a training label on `hotline:labels`,
        the ticket leaves the review queue, and an open ticket whose category changed goes back to
        dispatch (`TicketRerouted` with the category and no department: dispatch routes it again)."""
        if category not in self.categories:
            raise HttpError(
                422,
                "invalid_payload",
                "unknown category",
                [
                    {
                        "field": "category",
                        "problem": f"not in the taxonomy: {sorted(self.categories)}",
                        "type": "enum",
                    }
                ],
            )
        ticket = await self._ticket(ticket_id)
        previous = ticket.category
        duplicate = ticket.category == category and (ticket.model_extra or {}).get("category_source") == (
            "operator"
        )
        if previous != category and ticket.department and ticket.status not in CLOSED:
            # Before the write and carrying the category, so dispatch routes by it whichever it reads
            # first; a retry after a failed write publishes the same event id, which publishes nothing twice.
            await self.publish_once(
                "reroute",
                streams.REROUTED,
                TicketRerouted(
                    event_id=derive_id(ticket_id, "recategorized", category, ticket.department),
                    ticket_id=ticket_id,
                    occurred_at=utcnow(),
                    operator=operator,
                    department=None,
                    category=category,
                    reason=f"category corrected: {previous or '-'} -> {category}",
                ),
                history={"event": "reroute_requested", "summary": f"routing again for {category}"},
                refuse_statuses=CLOSED,
            )
        if not duplicate:
            now = iso(utcnow())
            label = {
                "ticket_id": ticket_id,
                "text": ticket.text or "",
                "category": category,
                "previous": previous or "",
                "operator": operator,
                "at": now,
            }
            write = StoreWrite(
                ticket_id=ticket_id,
                # Keyed on the ticket's last update too, so A -> B -> A -> B records every correction.
                event_id=derive_id(
                    ticket_id, "category", operator, category, key[:200] if key else str(ticket.updated_at)
                ),
                fields={"category": category, "category_source": "operator", "updated_at": now},
                history={
                    "at": now,
                    "event": "category_corrected" if previous != category else "category_confirmed",
                    "summary": f"{previous or '-'} -> {category} by {operator}",
                },
                ops=[StreamAdd(keys.labels, label, self.stream_maxlen), SortedRemove(keys.review, ticket_id)],
            )
            await available(self.store.apply(write, scope=contract.OPERATOR))
        # Already corrected to this (a retry, or a second operator agreeing): nothing new to learn.
        self._count("label", "duplicate" if duplicate else "ok")
        return Corrected(ticket_id=ticket_id, category=category, previous=previous, duplicate=duplicate)

    async def reroute(
        self, operator: str, ticket_id: str, department: str, reason: str | None, key: str | None
    ) -> Published:
        """Send an open ticket to another department; dispatch moves it and learns from it."""
        if department not in self.departments:
            raise HttpError(
                422,
                "invalid_payload",
                "unknown department",
                [{"field": "department", "problem": "not in the routing table", "type": "enum"}],
            )
        ticket = await self._ticket(ticket_id)
        if ticket.status in CLOSED or ticket.department is None:
            raise HttpError(409, "not_dispatched", f"the ticket is {ticket.status}: nothing to re-route")
        if ticket.department == department:
            raise HttpError(409, "same_department", f"the ticket is already with {department}")
        reason = masked(reason) if reason else None
        event = TicketRerouted(
            # Keyed on the department it leaves, so A -> B -> A -> B records every move.
            event_id=derive_id(
                ticket_id, "rerouted", ticket.department, department, key[:200] if key else ""
            ),
            ticket_id=ticket_id,
            occurred_at=utcnow(),
            operator=operator,
            department=department,
            reason=reason,
        )
        result = await self.publish_once(
            "reroute",
            streams.REROUTED,
            event,
            history={
                "event": "reroute_requested",
                "summary": f"{ticket.department} -> {department} by {operator}",
            },
            refuse_statuses=CLOSED,
        )
        if result.outcome == "conflict":
            raise HttpError(409, "not_dispatched", f"the ticket is {result.detail}")
        # An operator who decides where a ticket goes has reviewed it: it leaves the review queue (its
        # category is left as it is: no training label).
        reviewed = StoreWrite(
            ticket_id, derive_id(event.event_id, "reviewed"), ops=[SortedRemove(keys.review, ticket_id)]
        )
        await available(self.store.apply(reviewed, scope=contract.OPERATOR))
        return result


def _department_event_id(ticket: Ticket, dept: str, action: str, note: str | None, key: str | None) -> str:
    """The same request publishes once: keyed on the Idempotency-Key if given, else on what it says,
    within the current dispatch (a ticket sent back to the department later can be accepted again)."""
    if key:
        return derive_id(ticket.ticket_id, dept, action, "key", key[:200])
    said = hashlib.sha256((note or "").encode()).hexdigest()
    return derive_id(ticket.ticket_id, dept, action, str(ticket.dispatched_at), said)
