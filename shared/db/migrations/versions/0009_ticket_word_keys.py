"""The word index keys a ticket by its characters, and by bigrams only within runs of ASCII letters/digits.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

0005 keyed a ticket by every character bigram of its title and text: about 240 distinct keys a ticket,
most of them rare (half the entries are bigrams found in under 1% of the tickets), and adding them to the
GIN index cost 0.5-0.65 ms of PostgreSQL's CPU a ticket, three times the record's own write. What a GIN
insertion costs is mostly one descent of the entry tree per distinct key the batch brings (its pending
list groups a batch's entries by key): a long tail of rare keys is the expensive case, and grouping tickets
into blocks (one row for the union of a few hundred tickets' bigrams) does not shorten it. Measured on
20,000 real messages, same run: blocks of 64 or 500 tickets 0.54 / 0.45 ms a ticket against 0.54, while a
two-character word's candidates grew from 1% to 47% of the tickets (64) and most of the block.

So the keys are now what Lucene's standard analyzer indexes for Chinese text: each character, a vocabulary
of a few thousand, so a batch touches few keys. Each distinct character of the lower-cased title and text
is a key, and so is each bigram of its runs of ASCII letters and digits (English words: letters alone
would find nearly every English text). A word asked for is looked up by the same keys of itself: a text
holding the word holds each of its characters, and each bigram of its ASCII runs (the text's runs hold the
word's, as the function puts one space for any run of other characters, in both). The candidates are a
superset (路灯 finds the texts holding both 路 and 灯: 2.3 times as many as hold 路灯, on real messages) and
ILIKE keeps those that hold the word, so the answer is still exactly what ILIKE gives. A single character
is now looked up too. The keys are made unique in C (`array_to_tsvector` sorts them), cheaper than
handing the index every repeat.

Upgrading rebuilds `ticket_words` for every ticket that is not pending (about 0.2 ms a ticket; the index is
built after, at once); downgrade rebuilds it with 0005's bigrams.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# 0007's pass, with the function that makes a text's keys as a parameter.
INDEX_WORDS = """
CREATE OR REPLACE FUNCTION hotline_index_words(batch int) RETURNS int LANGUAGE plpgsql AS $$
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
    SELECT t.ticket_id, t.received_at, {keys}(concat_ws(' ', t.title, t.text))
    FROM unnest(ids, ats) AS p(ticket_id, received_at)
    JOIN tickets AS t ON t.ticket_id = p.ticket_id AND t.received_at = p.received_at
    ON CONFLICT (ticket_id, received_at) DO UPDATE SET words = EXCLUDED.words;
    RETURN cardinality(ids);
END $$
"""


def _switch(keys: str) -> None:
    """The pass and every indexed ticket's words made by `keys`; the GIN index built once, after."""
    op.execute(INDEX_WORDS.format(keys=keys))
    op.execute("DROP INDEX ticket_words_words")
    op.execute("TRUNCATE ticket_words")
    op.execute(
        "SELECT hotline_ensure_partitions('ticket_words', month) FROM (SELECT DISTINCT"
        " date_trunc('month', received_at AT TIME ZONE 'UTC')::date AS month FROM tickets) AS m"
    )
    op.execute(
        f"INSERT INTO ticket_words (ticket_id, received_at, words)"
        f" SELECT ticket_id, received_at, {keys}(concat_ws(' ', title, text)) FROM tickets AS t"
        " WHERE NOT EXISTS (SELECT FROM ticket_words_pending AS p"
        " WHERE p.ticket_id = t.ticket_id AND p.received_at = t.received_at)"
    )
    op.execute("CREATE INDEX ticket_words_words ON ticket_words USING gin (words)")


def upgrade() -> None:
    op.execute(
        """
CREATE FUNCTION hotline_word_keys(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT tsvector_to_array(array_to_tsvector(
        string_to_array(v, NULL) || hotline_bigrams(regexp_replace(v, '[^a-z0-9]+', ' ', 'g'))
    )) FROM lower(value) AS v
$$
"""
    )
    _switch("hotline_word_keys")


def downgrade() -> None:
    _switch("hotline_bigrams")
    op.execute("DROP FUNCTION hotline_word_keys(text)")
