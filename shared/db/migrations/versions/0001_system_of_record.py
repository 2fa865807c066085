"""The system of record: every ticket event once, each ticket's current state and its history.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Three tables, each partitioned by month (declarative range partitioning) so that a month is one table to
back up, archive or drop, and a query over a window reads only that window's partitions:
- `ticket_events`: append-only, one row per event id (the primary key carries the partition key, as
  PostgreSQL requires; an event id is published once, atomically with the ack of what caused it, so its
  `occurred_at` is fixed and a redelivery hits the key and inserts nothing). By `occurred_at`.
- `tickets`: the projection the Redis store holds, as typed columns, by `received_at` (fixed for a
  ticket's life). `rev` is the store's revision of the ticket: a snapshot only replaces an older one.
  Fields no column names yet are kept in `extra` rather than dropped.
- `ticket_history`: the store's history entries; `position` is the entry's stable index (the Open311
  update id is built from it). By the entry's `at`.

Partitions are created ahead by `hotline_ensure_partitions(table, month)`, which the recorder calls for
the months it is about to write (and at start for the months around now). Months are UTC months.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The store's ticket fields with their types; `extra` keeps any other.
TICKET_COLUMNS = """
    status text NOT NULL,
    channel text,
    text text,
    title text,
    language text,
    caller_hash text,
    caller_masked text,
    lat double precision,
    lon double precision,
    address text,
    service_code text,
    media_url text,
    ivr_choice text,
    attributes jsonb,
    request_fingerprint text,
    updated_at timestamptz,
    category text,
    category_source text,
    confidence double precision,
    urgency text,
    urgency_cue text,
    district text,
    street text,
    place_source text,
    model_version text,
    needs_review boolean,
    classified_at timestamptz,
    duplicate_of text,
    dup_sig text,
    repeat_count integer,
    department text,
    dispatch_reason text,
    attempt integer,
    dispatched_at timestamptz,
    dispatch_due_at timestamptz,
    feedback_due_at timestamptz,
    accepted_at timestamptz,
    resolved_at timestamptz,
    escalated_dispatch_at timestamptz,
    escalated_feedback_at timestamptz,
    citizen_comment text,
    citizen_status text,
    citizen_media_url text,
    citizen_comment_at timestamptz,
    evaluation_tracked_at timestamptz,
    eval_department text,
    eval_district text,
    eval_category text,
    eval_dispatched_at timestamptz,
    eval_dispatch_due_at timestamptz,
    eval_answered_at timestamptz,
    eval_rounds jsonb,
    eval_reopen_count integer,
    eval_supervision boolean,
    eval_survey_round integer,
    eval_survey_status text,
    eval_survey_delivery text,
    eval_survey_sent_at timestamptz,
    eval_survey_answer_by timestamptz,
"""


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE ticket_events (
    event_id text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
    occurred_at timestamptz NOT NULL,
    ticket_id text NOT NULL CHECK (length(ticket_id) BETWEEN 1 AND 64),
    stream text NOT NULL,
    version smallint NOT NULL,
    body jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at)
"""
    )
    op.execute("CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, occurred_at)")
    op.execute("CREATE INDEX ticket_events_stream ON ticket_events (stream, occurred_at)")
    op.execute(
        f"""
CREATE TABLE tickets (
    ticket_id text NOT NULL CHECK (length(ticket_id) BETWEEN 1 AND 64),
    received_at timestamptz NOT NULL,
    rev bigint NOT NULL,
{TICKET_COLUMNS}
    extra jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, received_at)
) PARTITION BY RANGE (received_at)
"""
    )
    # Open311 searches (status, service code, date range), a department's tickets, recent changes.
    op.execute("CREATE INDEX tickets_received ON tickets (received_at)")
    op.execute("CREATE INDEX tickets_status ON tickets (status, received_at)")
    op.execute("CREATE INDEX tickets_service_code ON tickets (service_code, received_at)")
    op.execute("CREATE INDEX tickets_department ON tickets (department, status)")
    op.execute("CREATE INDEX tickets_updated ON tickets (updated_at)")
    op.execute(
        """
CREATE TABLE ticket_history (
    ticket_id text NOT NULL,
    position integer NOT NULL CHECK (position >= 0),
    at timestamptz NOT NULL,
    status text,
    entry jsonb NOT NULL,
    PRIMARY KEY (ticket_id, position, at)
) PARTITION BY RANGE (at)
"""
    )
    # Open311 servicerequestupdates: status changes in a time window.
    op.execute("CREATE INDEX ticket_history_status_changes ON ticket_history (at) WHERE status IS NOT NULL")
    op.execute(
        """
CREATE FUNCTION hotline_ensure_partitions(parent text, month date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := format('%s_%s', parent, to_char(first, 'YYYY_MM'));
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    -- Two recorders creating the same month at once: the second waits here, then finds it.
    PERFORM pg_advisory_xact_lock(hashtext(name));
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
            name, parent, first::text || ' 00:00+00', (first + interval '1 month')::date::text || ' 00:00+00'
        );
    END IF;
END $$;
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION hotline_ensure_partitions(text, date)")
    op.execute("DROP TABLE ticket_history")
    op.execute("DROP TABLE tickets")
    op.execute("DROP TABLE ticket_events")
