"""The system of record's schema on a real PostgreSQL: partitions, keys, the `hotline db` command."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared import contract
from shared.db import migrate
from shared.db.urls import asyncpg_dsn
from tools.cli import main


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(asyncpg_dsn(database_url))
    yield c
    await c.close()


async def test_the_database_is_at_the_newest_migration_and_upgrading_again_changes_nothing(
    database_url: str,
) -> None:
    assert await migrate.current(database_url) == migrate.head()
    migrate.upgrade(database_url)
    assert await migrate.current(database_url) == migrate.head()


async def test_every_table_is_partitioned_by_month(conn: asyncpg.Connection) -> None:
    keys = {
        r["relname"]: r["key"]
        for r in await conn.fetch(
            "SELECT c.relname, pg_get_partkeydef(c.oid) AS key FROM pg_class c "
            "WHERE c.relname IN ('ticket_events', 'tickets', 'ticket_history')"
        )
    }
    assert keys == {
        "ticket_events": "RANGE (occurred_at)",
        "tickets": "RANGE (received_at)",
        "ticket_history": "RANGE (at)",
    }
    for table in keys:
        await conn.execute("SELECT hotline_ensure_partitions($1, '2026-02-17')", table)
        await conn.execute("SELECT hotline_ensure_partitions($1, '2026-02-01')", table)  # again: nothing
    bounds = await conn.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ticket_events'::regclass"
    )
    assert [(b["relname"], b["bound"]) for b in bounds] == [
        ("ticket_events_2026_02", "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00')")
    ]


async def test_an_event_is_kept_once_and_a_month_without_partition_is_refused(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("SELECT hotline_ensure_partitions('ticket_events', '2026-03-01')")
    insert = (
        "INSERT INTO ticket_events (event_id, occurred_at, ticket_id, stream, version, body) "
        "VALUES ($1, $2, 'T1', 'tickets.received', 1, $3) ON CONFLICT DO NOTHING"
    )
    at = datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert await conn.execute(insert, "e-1", at, json.dumps({"text": "a"})) == "INSERT 0 1"
    assert await conn.execute(insert, "e-1", at, json.dumps({"text": "a"})) == "INSERT 0 0"
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        await conn.execute(insert.replace("'T1'", "''"), "e-2", at, "{}")
    with pytest.raises(asyncpg.PostgresError, match="no partition"):
        await conn.execute(insert, "e-3", datetime(2099, 1, 1, tzinfo=UTC), "{}")


def test_hotline_db_current_and_upgrade(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["db", "current"]) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    assert f"current: {migrate.head()}" in capsys.readouterr().out
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:s3cret@127.0.0.1:1/x")
    assert main(["db", "current"]) == 1
    err = capsys.readouterr().err
    assert "reading the database failed" in err and "s3cret" not in err


async def test_sessions_creating_the_same_month_at_once_all_succeed(database_url: str) -> None:
    conns = [await asyncpg.connect(asyncpg_dsn(database_url)) for _ in range(4)]
    try:
        for month in (1, 2, 3):
            await asyncio.gather(
                *(
                    c.execute("SELECT hotline_ensure_partitions('tickets', $1)", date(2025, month, 1))
                    for c in conns
                )
            )
        names = await conns[0].fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'tickets'::regclass AND c.relname LIKE 'tickets_2025_%' ORDER BY 1"
        )
        assert [n["relname"] for n in names] == ["tickets_2025_01", "tickets_2025_02", "tickets_2025_03"]
    finally:
        for c in conns:
            await c.close()


@pytest.mark.parametrize(
    ("before", "kept", "moved"),
    [
        ("0002", {"handle_seconds": "95.5"}, {"handle_seconds": 95.5}),
        (
            "0003",
            {"eval_responded_in_time": "1", "reopen_count": "2", "alternatives": '[["roads", 0.9]]'},
            {"eval_responded_in_time": True, "reopen_count": 2, "alternatives": '[["roads", 0.9]]'},
        ),
    ],
)
async def test_fields_kept_in_extra_move_to_the_columns_a_later_migration_adds(
    postgres_server_url: str, before: str, kept: dict[str, str], moved: dict[str, object]
) -> None:
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{name}"))
    try:
        migrate.upgrade(url, before)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("SELECT hotline_ensure_partitions('tickets', '2026-12-01')")
            await conn.execute(
                "INSERT INTO tickets (ticket_id, received_at, rev, status, extra) VALUES"
                " ('T1', '2026-12-03T08:00:00Z', 1, 'received', $1)",
                json.dumps({**kept, "x": "y"}),
            )
            migrate.upgrade(url)
            row = await conn.fetchrow(f"SELECT {', '.join(moved)}, extra FROM tickets")
            assert {n: row[n] for n in moved} == moved and json.loads(row["extra"]) == {"x": "y"}
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_every_ticket_field_of_the_contract_has_its_typed_column(conn: asyncpg.Connection) -> None:
    """A field added to shared/contract.py without a migration would land in `extra` as text: the record
    keeps it, but the reports and exports that read columns never see it."""
    columns = {
        r["column_name"]: r["type"]
        for r in await conn.fetch(
            "SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type "
            "FROM pg_attribute a WHERE a.attrelid = 'tickets'::regclass AND a.attnum > 0 "
            "AND NOT a.attisdropped"
        )
    }
    # The contract names types as a migration spells them (timestamptz); PostgreSQL names them in full.
    spelled = {
        kind: await conn.fetchval("SELECT $1::text::regtype::text", kind.sql) for kind in contract.FieldType
    }
    expected = {f.name: spelled[f.type] for f in contract.TICKET_FIELDS}
    assert {n: columns.get(n) for n in expected} == expected
