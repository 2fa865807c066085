"""Ticket search over the system of record: PostgreSQL's `tickets` table (the recorder's typed copy of
every ticket, kept after a closed ticket leaves Redis), indexed by status, department and received_at,
and `ticket_words`, the keys of each ticket's title and text for words (its characters and its ASCII
bigrams, migration 0009; GIN-indexed), filled in the background from `ticket_words_pending` (migration
0007), which the search reads too."""

from __future__ import annotations

from typing import Any

from services.console.search import LIMIT, Found, Query
from shared.rehydration import RecordReader
from shared.store import Ticket

COLUMNS = "ticket_id, status, text, title, district, street, category, department, received_at, urgency"
# What a word is looked for in: the title and the text, as the word index takes their keys.
WORDS = "coalesce(title, '') || ' ' || coalesce(text, '')"
# Words are first looked for in this many of the newest tickets the filters keep: a common word fills
# the page there, cheaper than fetching its thousands of candidates from the index to sort them.
RECENT = 1_000
Statement = tuple[str, list[Any]]


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def statements(query: Query, since: Any, until: Any) -> list[Statement]:
    """The queries to try in turn, each with its arguments (every value a bound parameter): a page of
    `LIMIT` from one is the answer, and so is whatever the last one finds. Each word must appear in the
    title or text (case-insensitive): among the newest `RECENT` tickets first, then through the index,
    where a word's keys (or the ticket's not being indexed yet) find the candidates and ILIKE keeps
    those that hold the word itself."""
    args: list[Any] = [since, until]
    filters = ["received_at >= $1", "received_at < $2"]
    for column in ("status", "district", "category", "department"):
        if value := getattr(query, column):
            args.append(value)
            filters.append(f"{column} = ${len(args)}")
    where = " AND ".join(filters)
    order = f"ORDER BY received_at DESC LIMIT {LIMIT}"
    words = query.text.split()
    if not words:
        return [(f"SELECT {COLUMNS} FROM tickets WHERE {where} {order}", args)]
    likes = []
    for word in words:
        args.append(_like(word))
        likes.append(f"({WORDS}) ILIKE ${len(args)}")
    contains = " AND ".join(likes)
    recent = (
        f"SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM tickets WHERE {where}"
        f" ORDER BY received_at DESC LIMIT {RECENT}) AS recent WHERE {contains} {order}"
    )
    keys = [f"words @> hotline_word_keys(${n})" for n in range(len(args) + 1, len(args) + len(words) + 1)]
    # The tickets not indexed yet are candidates too (ILIKE decides): few, except during a burst. A
    # UNION inside one IN keeps it a semi-join; an OR of two INs would scan every ticket in the window.
    candidates = (
        "(ticket_id, received_at) IN (SELECT ticket_id, received_at FROM ticket_words"
        f" WHERE received_at >= $1 AND received_at < $2 AND {' AND '.join(keys)}"
        " UNION ALL SELECT ticket_id, received_at FROM ticket_words_pending"
        " WHERE received_at >= $1 AND received_at < $2)"
    )
    indexed = f"SELECT {COLUMNS} FROM tickets WHERE {where} AND {candidates} AND {contains} {order}"
    return [(recent, list(args)), (indexed, [*args, *words])]


class History:
    def __init__(self, record: RecordReader) -> None:
        self.record = record

    async def search(self, query: Query, since: Any, until: Any) -> Found:
        """A single word that is a ticket's id finds that ticket (by the primary key, whatever the
        filters); anything else is searched for."""
        rows = []
        if query.text and " " not in query.text:
            rows = await self.record.fetch(f"SELECT {COLUMNS} FROM tickets WHERE ticket_id = $1", query.text)
        for sql, args in [] if rows else statements(query, since, until):
            rows = await self.record.fetch(sql, *args)
            if len(rows) >= LIMIT:
                break
        tickets = [Ticket.model_validate({k: v for k, v in dict(r).items() if v is not None}) for r in rows]
        return Found(tickets, len(tickets), True)
