"""`hotline tickets export` on a real PostgreSQL: a window of tickets as CSV or Parquet, nothing personal."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest

from shared.db.urls import asyncpg_dsn
from tools.cli import main
from tools.opendata import COLUMNS, PERSONAL

CALLER_HASH = "hmac-of-the-callers-number-1f2e3d"
TEXT = "Zhang Wei at 13800138000: the water pipe outside No. 12 Jianguo Road has burst"
ADDRESS = "No. 12 Jianguo Road"


def _ticket(ticket_id: str, received: datetime, **fields: object) -> dict[str, object]:
    return {
        "ticket_id": ticket_id,
        "received_at": received,
        "rev": 5,
        "status": "resolved",
        "channel": "telephony",
        "text": TEXT,
        "caller_hash": CALLER_HASH,
        "caller_masked": "138****8000",
        "address": ADDRESS,
        "lat": 39.912345,
        "lon": 116.456789,
        "category": "water",
        "district": "Dongcheng",
        "department": "water",
        "citizen_comment": "call me on 13800138000",
        "resolved_at": received + timedelta(hours=1),
        **fields,
    }


async def _record(database_url: str) -> None:
    tickets = [
        _ticket("t-jan-1", datetime(2026, 1, 5, 8, tzinfo=UTC)),
        _ticket("t-jan-2", datetime(2026, 1, 31, 15, tzinfo=UTC), status="closed", repeat_count=2),
        _ticket("t-feb-1", datetime(2026, 2, 1, 0, tzinfo=UTC)),  # the window ends before it
        _ticket("t-dec-1", datetime(2025, 12, 31, 23, tzinfo=UTC)),
    ]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for month in (date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)):
            await conn.execute("SELECT hotline_ensure_partitions('tickets', $1)", month)
        names = sorted({n for t in tickets for n in t})
        await conn.execute("TRUNCATE tickets")
        await conn.copy_records_to_table(
            "tickets", records=[tuple(t.get(n) for n in names) for t in tickets], columns=names
        )
    finally:
        await conn.close()


@pytest.fixture
def recorded(database_url: str) -> str:
    asyncio.run(_record(database_url))
    return database_url


def _export(url: str, monkeypatch: pytest.MonkeyPatch, out: Path, fmt: str) -> int:
    monkeypatch.setenv("DATABASE_URL", url)
    return main(
        [
            "tickets",
            "export",
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
            "--format",
            fmt,
            "--out",
            str(out),
        ]
    )


def test_nothing_personal_is_ever_a_column() -> None:
    assert not {c.name for c in COLUMNS} & set(PERSONAL)
    for column in COLUMNS:
        for word in ("caller", "text", "address", "comment", "media", "attributes", "extra"):
            assert word not in column.sql, column


def test_the_csv_holds_the_windows_tickets_and_nothing_personal(
    recorded: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "jan.csv"
    assert _export(recorded, monkeypatch, out, "csv") == 0
    assert "wrote 2 tickets" in capsys.readouterr().out
    raw = out.read_text(encoding="utf-8")
    for secret in (
        CALLER_HASH,
        "13800138000",
        "138****8000",
        "Jianguo",
        "Zhang Wei",
        "39.912345",
        "116.4567",
    ):
        assert secret not in raw
    rows = list(csv.DictReader(raw.splitlines()))
    assert [r["service_request_id"] for r in rows] == ["t-jan-1", "t-jan-2"]
    assert rows[0]["requested_at"] == "2026-01-05T08:00:00+00:00"
    assert (rows[0]["lat_approx"], rows[0]["long_approx"]) == ("39.91", "116.46")
    assert (rows[1]["status"], rows[1]["repeat_count"], rows[1]["agency"]) == ("closed", "2", "water")
    assert list(rows[0]) == [c.name for c in COLUMNS]


def test_the_parquet_file_has_typed_columns(
    recorded: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "jan.parquet"
    assert _export(recorded, monkeypatch, out, "parquet") == 0
    table = pq.read_table(out)
    assert table.column_names == [c.name for c in COLUMNS]
    assert str(table.schema.field("requested_at").type) == "timestamp[us, tz=UTC]"
    data = table.to_pylist()
    assert [r["service_request_id"] for r in data] == ["t-jan-1", "t-jan-2"]
    assert data[0]["lat_approx"] == pytest.approx(39.91)
    assert data[0]["resolved_at"] == datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_a_bad_window_or_no_database_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    assert main(["tickets", "export", "--from", "2026-02-01", "--to", "2026-01-01"]) == 2
    assert "--from must be before --to" in capsys.readouterr().err
    assert main(["tickets", "export", "--from", "2026-01-01", "--to", "2026-02-01"]) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert (
        main(
            ["tickets", "export", "--from", "2026-01-01", "--to", "2026-02-01", "--out", str(tmp_path / "x")]
        )
        == 1
    )
    assert "reading the database failed" in capsys.readouterr().err
