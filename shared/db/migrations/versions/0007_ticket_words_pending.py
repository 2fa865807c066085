"""The word index is filled off the recorder's write transaction: the triggers only list the ticket.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

0005's triggers computed a ticket's bigrams and added them to the GIN index inside the recorder's
transaction: about 0.65 of PostgreSQL's 0.88 ms per ticket, paid by the system of record's writes, so a
burst recorded slower because search was kept current. Now the triggers put (ticket_id, received_at) in
`ticket_words_pending`, a small plain table (a row and a btree entry), and `hotline_index_words(batch)`
moves up to `batch` of them into `ticket_words`; the recorder calls it in the background and holds off
while it is behind on recording (services/recorder/words.py), as near-real-time search engines refresh.
The console's search also looks at the pending tickets (ILIKE on their text), so it stays exact.

A ticket is taken with FOR UPDATE SKIP LOCKED, so replicas index disjoint sets. A text change made while
its ticket is being indexed lists it again: the trigger's insert waits on the row being deleted and then
inserts, so the next pass reads the new text.

Nothing is pending at upgrade: 0005's triggers indexed every ticket. Downgrade indexes what is pending,
then puts 0005's triggers back (0005's function is kept for that).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _triggers(function: str) -> None:
    # The same names as 0005's, so what switches them off by name (bench/console.py) still does.
    op.execute(
        f"CREATE TRIGGER tickets_words AFTER INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION {function}()"
    )
    op.execute(
        "CREATE TRIGGER tickets_words_changed AFTER UPDATE ON tickets FOR EACH ROW"
        " WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.text IS DISTINCT FROM NEW.text)"
        f" EXECUTE FUNCTION {function}()"
    )


def _drop_triggers() -> None:
    op.execute("DROP TRIGGER tickets_words_changed ON tickets")
    op.execute("DROP TRIGGER tickets_words ON tickets")


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE ticket_words_pending (
    ticket_id text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, received_at)
)
"""
    )
    op.execute(
        """
CREATE FUNCTION hotline_ticket_words_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_words_pending (ticket_id, received_at) VALUES (NEW.ticket_id, NEW.received_at)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$
"""
    )
    op.execute(
        """
CREATE FUNCTION hotline_index_words(batch int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
    ats timestamptz[];
    month date;
BEGIN
    -- Taken first, into arrays: the partitions must exist before the statement that inserts plans.
    WITH taken AS (
        DELETE FROM ticket_words_pending
        WHERE (ticket_id, received_at) IN (
            SELECT ticket_id, received_at FROM ticket_words_pending LIMIT batch FOR UPDATE SKIP LOCKED
        )
        RETURNING ticket_id, received_at
    )
    SELECT array_agg(ticket_id), array_agg(received_at) INTO ids, ats FROM taken;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    FOR month IN SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC')::date FROM unnest(ats) AS at LOOP
        PERFORM hotline_ensure_partitions('ticket_words', month);
    END LOOP;
    INSERT INTO ticket_words (ticket_id, received_at, words)
    SELECT t.ticket_id, t.received_at, hotline_bigrams(concat_ws(' ', t.title, t.text))
    FROM unnest(ids, ats) AS p(ticket_id, received_at)
    JOIN tickets AS t ON t.ticket_id = p.ticket_id AND t.received_at = p.received_at
    ON CONFLICT (ticket_id, received_at) DO UPDATE SET words = EXCLUDED.words;
    RETURN cardinality(ids);
END $$
"""
    )
    _drop_triggers()
    _triggers("hotline_ticket_words_pending")


def downgrade() -> None:
    _drop_triggers()
    op.execute("SELECT hotline_index_words(2147483647)")
    _triggers("hotline_ticket_words")
    op.execute("DROP FUNCTION hotline_index_words(int)")
    op.execute("DROP FUNCTION hotline_ticket_words_pending()")
    op.execute("DROP TABLE ticket_words_pending")
