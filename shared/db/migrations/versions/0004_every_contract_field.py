"""Columns for every ticket field shared/contract.py declares, typed as `FieldType.sql` says.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Fields declared since 0001 without a column were kept in `tickets.extra` as the store's strings; they get
their columns and rows recorded before move them there (as 0003 did). The counts 0001 made `integer` become
`bigint`, the contract's INT, so one type per field holds from the hash to the record
(tests/integration/test_record_schema.py compares the table with the contract).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = {
    "alternatives": "jsonb",
    "rejections": "bigint",
    "rejected_by": "text",
    "last_rejection": "text",
    "reopen_count": "bigint",
    "reopened_at": "timestamptz",
    "rerouted_by": "text",
    "eval_responded_for": "text",
    "eval_responded_at": "timestamptz",
    "eval_responded_in_time": "boolean",
    "eval_resolved_at": "timestamptz",
    "eval_survey_department": "text",
    "eval_survey_district": "text",
    "eval_survey_category": "text",
}

WIDENED = ("attempt", "repeat_count", "eval_survey_round", "eval_reopen_count")


def upgrade() -> None:
    # One statement each for the columns and the rows: each ALTER or UPDATE of `tickets` reads every
    # partition, so fourteen of them would read the table fourteen times.
    op.execute(
        "ALTER TABLE tickets "
        + ", ".join(f"ALTER COLUMN {n} TYPE bigint" for n in WIDENED)
        + ", "
        + ", ".join(f"ADD COLUMN {n} {kind}" for n, kind in COLUMNS.items())
    )
    names = "ARRAY[" + ", ".join(f"'{n}'" for n in COLUMNS) + "]"
    moved = ", ".join(f"{n} = coalesce((extra->>'{n}')::{kind}, {n})" for n, kind in COLUMNS.items())
    op.execute(f"UPDATE tickets SET {moved}, extra = nullif(extra - {names}, '{{}}') WHERE extra ?| {names}")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE tickets "
        + ", ".join(f"DROP COLUMN {n}" for n in COLUMNS)
        + ", "
        + ", ".join(f"ALTER COLUMN {n} TYPE integer" for n in WIDENED)
    )
