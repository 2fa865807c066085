"""The open-data export of the record: one row per ticket received in a window, with no personal data.

In the spirit of NYC 311's public data set: what was reported, when, where to the district, who handled it
and how it ended. Left out on purpose: the caller's hash and masked number, the citizen's own words (the
complaint text, comments, Open311 attributes and photos can hold names, numbers and addresses), the address
and the exact coordinates (rounded to `COORDINATE_DECIMALS`: about 1 km, a neighbourhood, not a door).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg

from shared.db.urls import asyncpg_dsn

Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
COORDINATE_DECIMALS = 2
BATCH = 10_000


@dataclass(frozen=True)
class Column:
    name: str  # in the export
    sql: str  # from the tickets table
    kind: Literal["text", "time", "float", "int"]


COLUMNS: tuple[Column, ...] = (
    Column("service_request_id", "ticket_id", "text"),
    Column("requested_at", "received_at", "time"),
    Column("channel", "channel", "text"),
    Column("service_code", "coalesce(service_code, category)", "text"),
    Column("category", "category", "text"),
    Column("urgency", "urgency", "text"),
    Column("status", "status", "text"),
    Column("district", "district", "text"),
    Column("street", "street", "text"),
    Column("lat_approx", f"round(lat::numeric, {COORDINATE_DECIMALS})::float8", "float"),
    Column("long_approx", f"round(lon::numeric, {COORDINATE_DECIMALS})::float8", "float"),
    Column("agency", "department", "text"),
    Column("dispatched_at", "dispatched_at", "time"),
    Column("dispatch_due_at", "dispatch_due_at", "time"),
    Column("accepted_at", "accepted_at", "time"),
    Column("resolved_at", "resolved_at", "time"),
    Column("updated_at", "updated_at", "time"),
    Column("duplicate_of", "duplicate_of", "text"),
    Column("repeat_count", "repeat_count", "int"),
    Column("reopen_count", "eval_reopen_count", "int"),
)
# Never exported, whatever is added to COLUMNS: a test holds the export to this.
PERSONAL = (
    "caller_hash",
    "caller_masked",
    "text",
    "title",
    "address",
    "lat",
    "lon",
    "media_url",
    "attributes",
    "citizen_comment",
    "citizen_media_url",
    "request_fingerprint",
    "extra",
)

QUERY = (
    f"SELECT {', '.join(f'{c.sql} AS {c.name}' for c in COLUMNS)} FROM tickets "
    "WHERE received_at >= $1 AND received_at < $2 ORDER BY received_at, ticket_id"
)


async def rows(url: str, start: datetime, end: datetime) -> AsyncIterator[list[asyncpg.Record]]:
    """The window's tickets in batches, read through a cursor: the export's memory does not grow with it."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await conn.cursor(QUERY, start, end)
            while batch := await cursor.fetch(BATCH):
                yield batch
    finally:
        await conn.close()


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def csv_lines(batch: list[asyncpg.Record], header: bool) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow([c.name for c in COLUMNS])
    writer.writerows([_cell(r[c.name]) for c in COLUMNS] for r in batch)
    yield out.getvalue()


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = {
        "text": pa.string(),
        "time": pa.timestamp("us", tz="UTC"),
        "float": pa.float64(),
        "int": pa.int32(),
    }
    return pa.schema([(c.name, types[c.kind]) for c in COLUMNS])


async def export(url: str, start: datetime, end: datetime, fmt: Format, out: Path) -> int:
    """Write the window's tickets to `out`; returns how many."""
    count = 0
    if fmt == "csv":
        with out.open("w", encoding="utf-8", newline="") as file:
            file.write(next(csv_lines([], header=True)))
            async for batch in rows(url, start, end):
                file.writelines(csv_lines(batch, header=False))
                count += len(batch)
        return count
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        async for batch in rows(url, start, end):
            columns = [[r[c.name] for r in batch] for c in COLUMNS]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            count += len(batch)
    return count
