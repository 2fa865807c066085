"""hotline_ensure_partitions: two sessions creating the same month at once no longer fail.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

The advisory lock made the second session wait, but its catalog lookup after the wait could still miss
the table the first had just created, and its CREATE then failed (seen with several recorder loops
starting together). The CREATE now treats "already exists" as done.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE OR REPLACE FUNCTION hotline_ensure_partitions(parent text, month date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := format('%s_%s', parent, to_char(first, 'YYYY_MM'));
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(name));
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
        name, parent, first::text || ' 00:00+00', (first + interval '1 month')::date::text || ' 00:00+00'
    );
EXCEPTION WHEN duplicate_table OR unique_violation THEN
    NULL;  -- created meanwhile by another session
END $$
"""
    )


def downgrade() -> None:
    """0001's function is kept: it differs only in failing on the race."""
