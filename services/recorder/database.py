"""The recorder's writes to PostgreSQL: batches COPYed into a session's staging table and moved into the
partitioned tables by one INSERT ... ON CONFLICT, one transaction per batch.

A batch the database refuses for its data (a constraint, a character PostgreSQL cannot store, a month
without partition) is split in halves until the rows it refuses are alone; those are returned with the
database's reason and the rest is written. A database that cannot be reached is waited for: the batch
is written once it is back, so a restart of PostgreSQL costs lag, never records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import asyncpg

from services.recorder.handlers import EVENT_COLUMNS, EVENT_KEYS, HISTORY_COLUMNS, TicketColumns
from shared.db.urls import asyncpg_dsn

log = logging.getLogger("hotline.recorder.database")

T = TypeVar("T")

# The data, not the database: splitting the batch finds the row.
REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# The database, not the data: wait for it and write the same batch again.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.TooManyConnectionsError,
)

# Months further ahead than this get no partition: an event dated years ahead is refused, not filed.
MONTHS_AHEAD = 2


@dataclass(frozen=True)
class Ticket:
    """One ticket's snapshot: its row, its new history rows and the revision they are of."""

    ticket_id: str
    rev: int
    row: tuple[Any, ...]
    history: list[tuple[Any, ...]] = field(default_factory=list)


def _month(at: datetime) -> date:
    at = at.astimezone(UTC) if at.tzinfo else at
    return date(at.year, at.month, 1)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class Database:
    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self.columns: TicketColumns | None = None
        self._partitions: set[tuple[str, date]] = set()
        self.up = False
        self.on_state: Callable[[bool], None] = lambda up: None

    async def _setup(self, conn: asyncpg.Connection) -> None:
        # Staging tables of the session, emptied at each commit (or rollback).
        for staging, table in (
            ("stage_events", "ticket_events"),
            ("stage_tickets", "tickets"),
            ("stage_history", "ticket_history"),
        ):
            # Columns and types only: the constraints apply when the rows move into the table.
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
                f"SELECT * FROM {table} WITH NO DATA"
            )

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                asyncpg_dsn(self.url), min_size=0, max_size=self.pool_size, init=self._setup
            )
        if self.columns is None:
            rows = await self._pool.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'tickets' AND table_schema = current_schema() ORDER BY ordinal_position"
            )
            if not rows:
                raise RuntimeError("no tickets table: run `hotline db upgrade` first")
            self.columns = TicketColumns.of([(r["column_name"], r["data_type"]) for r in rows])
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _mark(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self.on_state(up)

    async def until_done(self, work: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
        """Run `work`, waiting out an unreachable database (backing off up to 5 s); gives up only when
        `stop` is set (the caller then leaves its entries pending, for the next start)."""
        delay = 0.2
        while True:
            try:
                result = await work()
                self._mark(True)
                return result
            except UNAVAILABLE as exc:
                if self.up or delay == 0.2:
                    log.warning("PostgreSQL unavailable, waiting: %s", _reason(exc))
                self._mark(False)
                if stop.is_set():
                    raise
                if self._pool is not None:
                    await self._pool.expire_connections()
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    # -- partitions ---------------------------------------------------------------------------------

    async def _ensure(self, conn: Any, table: str, months: set[date]) -> None:
        ahead = datetime.now(UTC)
        limit = date(
            ahead.year + (ahead.month + MONTHS_AHEAD - 1) // 12, (ahead.month + MONTHS_AHEAD - 1) % 12 + 1, 1
        )
        for month in sorted(months):
            if (table, month) in self._partitions or month > limit:
                continue
            await conn.execute("SELECT hotline_ensure_partitions($1, $2)", table, month)
            self._partitions.add((table, month))

    # -- writes -------------------------------------------------------------------------------------

    async def write_events(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[int, str]]:
        """Write the events (each once: a redelivered one inserts nothing); returns (index, reason) of
        the rows the database refused."""

        async def write(part: Sequence[tuple[Any, ...]]) -> None:
            pool = await self.pool()
            async with pool.acquire() as conn:
                await self._ensure(conn, "ticket_events", {_month(r[1]) for r in part})
                async with conn.transaction():
                    await conn.copy_records_to_table("stage_events", records=part, columns=EVENT_COLUMNS)
                    cols = ", ".join(EVENT_COLUMNS)
                    # The envelope has its own columns: not kept again in the body.
                    body = "body - " + "ARRAY[" + ", ".join(f"'{k}'" for k in EVENT_KEYS) + "]"
                    values = ", ".join(body if c == "body" else c for c in EVENT_COLUMNS)
                    await conn.execute(
                        f"INSERT INTO ticket_events ({cols}) SELECT {values} FROM stage_events "
                        "ON CONFLICT DO NOTHING"
                    )

        return await _bisect(list(enumerate(rows)), write)

    async def write_tickets(self, tickets: Sequence[Ticket]) -> list[tuple[int, str]]:
        """Upsert the tickets' rows (a snapshot replaces only an older revision) and add their history."""

        async def write(part: Sequence[Ticket]) -> None:
            pool = await self.pool()
            assert self.columns is not None
            names = self.columns.names
            received = names.index("received_at")
            async with pool.acquire() as conn:
                await self._ensure(conn, "tickets", {_month(t.row[received]) for t in part})
                history = [h for t in part for h in t.history]
                await self._ensure(conn, "ticket_history", {_month(h[2]) for h in history})
                cols = ", ".join(names)
                updates = ", ".join(
                    f"{n} = EXCLUDED.{n}" for n in names if n not in ("ticket_id", "received_at")
                )
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "stage_tickets", records=[t.row for t in part], columns=names
                    )
                    await conn.execute(
                        f"INSERT INTO tickets ({cols}) SELECT {cols} FROM stage_tickets "
                        f"ON CONFLICT (ticket_id, received_at) DO UPDATE SET {updates}, recorded_at = now() "
                        "WHERE tickets.rev < EXCLUDED.rev"
                    )
                    if history:
                        await conn.copy_records_to_table(
                            "stage_history", records=history, columns=HISTORY_COLUMNS
                        )
                        hcols = ", ".join(HISTORY_COLUMNS)
                        await conn.execute(
                            f"INSERT INTO ticket_history ({hcols}) SELECT {hcols} FROM stage_history "
                            "ON CONFLICT DO NOTHING"
                        )

        return await _bisect(list(enumerate(tickets)), write)


async def _bisect(
    items: list[tuple[int, T]], write: Callable[[Sequence[T]], Awaitable[None]]
) -> list[tuple[int, str]]:
    """Write `items` in one transaction; if the database refuses the data, each half on its own, down to
    the single rows it refuses. Returns those rows' indexes with the reason."""
    if not items:
        return []
    try:
        await write([item for _, item in items])
        return []
    except REFUSED as exc:
        if len(items) == 1:
            return [(items[0][0], _reason(exc))]
    half = len(items) // 2
    return await _bisect(items[:half], write) + await _bisect(items[half:], write)
