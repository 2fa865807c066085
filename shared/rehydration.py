"""Tickets Redis no longer holds, read back from the record (PostgreSQL) as the store keeps them.

A closed ticket leaves Redis some time after the recorder has written its final state (see
services/recorder/retention.py). When something still concerns it (a citizen reopens it, a late update,
an Open311 client asks for it), the store finds no hash and asks here: the `tickets` row becomes the
hash again (each typed column back to the string the store wrote, `extra` spread back into fields,
the revision kept so the recorder's next snapshot replaces the row) and `ticket_history` the history
list, at the same positions, so Open311 update ids stay what they were.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.db.urls import asyncpg_dsn
from shared.store import iso

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2.0
# Misses come in bursts (a batch that reopens evicted tickets), searches and reports now and then: a
# connection idle this long is closed.
POOL_SIZE = 4
IDLE_SECONDS = 60.0
# Every read here is a lookup by key, a search or a report whose best plan depends on its values (one
# word is in a third of the texts, another in ten; a month's partitions): planned for each, never generic.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}

# Filled by the database, not a field of the store's hash.
NOT_FIELDS = ("ticket_id", "extra", "recorded_at")


@dataclass(frozen=True)
class Recorded:
    """A ticket as the store holds it: its hash's fields and its history entries (JSON), in order."""

    ticket_id: str
    fields: dict[str, str]
    history: list[str]


def field_text(value: Any) -> str:
    """A column's value as the store's string: timestamps in ISO 8601 (UTC), booleans "1"/"0"."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def hash_fields(row: asyncpg.Record) -> dict[str, str]:
    fields = {k: field_text(v) for k, v in row.items() if k not in NOT_FIELDS and v is not None}
    if row.get("extra"):
        fields.update({k: str(v) for k, v in json.loads(row["extra"]).items()})
    return fields


class RecordReader:
    """Reads the record through a small pool, opened at the first read (a process that never misses a
    ticket never connects) and shared by every reader of the process (`reader_for`): stores reading
    tickets back, the console's search, the evaluation's rates."""

    def __init__(self, url: str, *, strict: bool = False) -> None:
        """`strict`: an unreachable record raises (a reader answering a person says 503, not 404)."""
        self.url = url
        self.strict = strict
        self._pool: asyncpg.Pool | None = None
        # A pool serves the event loop it was opened in only; a process running a second loop (a CLI's
        # second asyncio.run, a test) gets a pool of its own there.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _open_pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            pool = await asyncpg.create_pool(
                asyncpg_dsn(self.url),
                min_size=0,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT_SECONDS,
                max_inactive_connection_lifetime=IDLE_SECONDS,
                server_settings=SERVER_SETTINGS,
            )
            if self._pool is not None and self._loop is loop:  # another read opened one meanwhile
                await pool.close()
            else:
                self._pool, self._loop = pool, loop
        assert self._pool is not None
        return self._pool

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = self._loop = None

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """The rows of one query through the pool; an unreachable record raises, whatever `strict` says
        (the caller, answering a person, says 503)."""
        pool = await self._open_pool()
        async with pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            return list(await conn.fetch(query, *args))

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PoolConnectionProxy]:
        """A connection in a read-only transaction that sees one moment of the record (queries that
        must add up, such as a report's)."""
        pool = await self._open_pool()
        async with (
            pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS) as conn,
            conn.transaction(readonly=True, isolation="repeatable_read"),
        ):
            yield conn

    async def tickets(self, ticket_ids: list[str]) -> dict[str, Recorded]:
        """The recorded tickets among `ticket_ids` (an id the record does not have is left out)."""
        if not ticket_ids:
            return {}
        try:
            pool = await self._open_pool()
            conn = await pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            if self.strict:
                raise
            # Most misses are tickets that never left Redis (a link to a ticket not written yet, an id
            # that names nothing): with the record down, the loop must go on for them. A ticket that
            # really was evicted is then handled as unknown (dead-lettered with the reason, replayable).
            log.warning(
                "record unreachable, %d ticket(s) not read back: %s", len(ticket_ids), type(exc).__name__
            )
            return {}
        try:
            rows = await conn.fetch("SELECT * FROM tickets WHERE ticket_id = ANY($1::text[])", ticket_ids)
            entries = await conn.fetch(
                "SELECT ticket_id, entry::text AS entry FROM ticket_history "
                "WHERE ticket_id = ANY($1::text[]) ORDER BY ticket_id, position",
                [r["ticket_id"] for r in rows],
            )
        finally:
            await pool.release(conn)
        history: dict[str, list[str]] = {}
        for e in entries:
            history.setdefault(e["ticket_id"], []).append(e["entry"])
        return {
            r["ticket_id"]: Recorded(r["ticket_id"], hash_fields(r), history.get(r["ticket_id"], []))
            for r in rows
        }


_READERS: dict[tuple[str, bool], RecordReader] = {}


def reader_for(url: str | None, *, strict: bool = False) -> RecordReader | None:
    """The process's reader of the record at `url` (one pool however many stores read it); None without a
    database (then nothing is ever evicted)."""
    if not url:
        return None
    if (url, strict) not in _READERS:
        _READERS[url, strict] = RecordReader(url, strict=strict)
    return _READERS[url, strict]


async def close_readers() -> None:
    """Close the pools the process's readers opened in this event loop (at a service's shutdown)."""
    for reader in _READERS.values():
        await reader.close()
