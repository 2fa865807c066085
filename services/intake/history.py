"""Open311's reads over the record (PostgreSQL): searches and status updates for any window.

Redis holds the hot tickets and 90 days of status-change index; the record holds every ticket for good,
a few seconds behind (the recorder's lag). A search reads both and keeps, for a ticket in both, what
Redis says (it is newer): so a window of last year comes from the record, and a ticket changed a second
ago shows its change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from shared.rehydration import RecordReader, hash_fields
from shared.status import CLOSED
from shared.store import Ticket, Update


class OpenRecord:
    """Open311's queries on the record, through the process's pool of it (the one the store's reads of
    evicted tickets use)."""

    def __init__(self, record: RecordReader) -> None:
        self.record = record

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await self.record.fetch(query, *args)

    async def search(
        self, start: datetime, end: datetime, statuses: set[str], codes: set[str], limit: int
    ) -> list[Ticket]:
        """The newest `limit` tickets received in [start, end], with an Open311 status in `statuses`
        and a service code in `codes` (each: any when empty)."""
        where = ["received_at >= $1", "received_at <= $2"]
        args: list[object] = [start, end]
        if statuses == {"closed"}:
            args.append(sorted(CLOSED))
            where.append(f"status = ANY(${len(args)}::text[])")
        elif statuses == {"open"}:
            args.append(sorted(CLOSED))
            where.append(f"NOT status = ANY(${len(args)}::text[])")
        if codes:
            args.append(sorted(codes))
            where.append(f"coalesce(service_code, category) = ANY(${len(args)}::text[])")
        args.append(limit)
        rows = await self._fetch(
            f"SELECT * FROM tickets WHERE {' AND '.join(where)} "
            f"ORDER BY received_at DESC, ticket_id LIMIT ${len(args)}",
            *args,
        )
        return [Ticket.model_validate({**hash_fields(r), "ticket_id": r["ticket_id"]}) for r in rows]

    async def updates(
        self, start: datetime, end: datetime, limit: int, ticket_ids: list[str] | None = None
    ) -> list[Update]:
        """Status changes with start <= at <= end, oldest first, at most `limit`."""
        args: list[object] = [start, end, limit]
        only = ""
        if ticket_ids is not None:
            args.append(ticket_ids)
            only = "AND ticket_id = ANY($4::text[]) "
        rows = await self._fetch(
            "SELECT ticket_id, position, at, entry::text AS entry FROM ticket_history "
            f"WHERE status IS NOT NULL AND at >= $1 AND at <= $2 {only}"
            "ORDER BY at, ticket_id, position LIMIT $3",
            *args,
        )
        return [Update(r["ticket_id"], r["position"], r["at"], json.loads(r["entry"])) for r in rows]


def merged_updates(hot: Iterable[Update], recorded: Iterable[Update], limit: int) -> list[Update]:
    """Both sources' changes once each (a change is its ticket and position), oldest first."""
    found = {(u.ticket_id, u.index): u for u in recorded}
    found.update({(u.ticket_id, u.index): u for u in hot})
    return sorted(found.values(), key=lambda u: (u.at, u.ticket_id, u.index))[:limit]
