"""Columns for the ticket fields added since 0001: the call's handling time, the numbers given in the
text (keyed hashes, as the store keeps them), and the link between a ticket and its problem (每月一题 /
proactive work orders). Until now these were kept in `tickets.extra`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = {
    "handle_seconds": "double precision",
    "contacts": "jsonb",
    "problem_id": "text",
    "proactive_ticket_id": "text",
}


def upgrade() -> None:
    for name, kind in COLUMNS.items():
        op.execute(f"ALTER TABLE tickets ADD COLUMN {name} {kind}")
    # Rows recorded before this migration kept these fields in `extra`: move them to their columns.
    for name, kind in COLUMNS.items():
        op.execute(
            f"UPDATE tickets SET {name} = (extra->>'{name}')::{kind},"
            f" extra = nullif(extra - '{name}', '{{}}') WHERE extra ? '{name}'"
        )


def downgrade() -> None:
    for name in COLUMNS:
        op.execute(f"ALTER TABLE tickets DROP COLUMN {name}")
