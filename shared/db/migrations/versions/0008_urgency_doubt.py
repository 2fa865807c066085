"""A column for `urgency_doubt`: why the urgency reviewer marked an emergency as a possible false alarm.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

A new field, so no row holds it in `extra` yet: the column is added, nothing is moved.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tickets ADD COLUMN urgency_doubt text")


def downgrade() -> None:
    op.execute("ALTER TABLE tickets DROP COLUMN urgency_doubt")
