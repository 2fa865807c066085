"""Ticket search over the system of record: PostgreSQL's `tickets` table (the recorder's typed copy of
every ticket, kept after a closed ticket leaves Redis), indexed by status, department and received_at."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.console.search import LIMIT, Found, Query
from shared.db.urls import asyncpg_dsn
from shared.store import Ticket

COLUMNS = "ticket_id, status, text, title, district, street, category, department, received_at, urgency"


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def statement(query: Query, since: Any, until: Any) -> tuple[str, list[Any]]:
    """The query and its arguments: every value a bound parameter; each word must appear in the title or
    text (case-insensitive), or a single word may be the ticket's id."""
    args: list[Any] = [since, until]
    where = ["received_at >= $1", "received_at < $2"]
    for column in ("status", "district", "category", "department"):
        if value := getattr(query, column):
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    words = query.text.split()
    for word in words:
        args.append(_like(word))
        where.append(f"(coalesce(title, '') || ' ' || coalesce(text, '')) ILIKE ${len(args)}")
    sql = f"SELECT {COLUMNS} FROM tickets WHERE {' AND '.join(where)}"
    if len(words) == 1:
        args.append(words[0])
        sql += f" OR ticket_id = ${len(args)}"
    return f"{sql} ORDER BY received_at DESC LIMIT {LIMIT}", args


class History:
    def __init__(self, database_url: str) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self._pool: asyncpg.Pool | None = None

    async def search(self, query: Query, since: Any, until: Any) -> Found:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=4)
        sql, args = statement(query, since, until)
        rows = await self._pool.fetch(sql, *args)
        tickets = [Ticket.model_validate({k: v for k, v in dict(r).items() if v is not None}) for r in rows]
        return Found(tickets, len(tickets), True)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
