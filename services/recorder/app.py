"""Wiring of the recorder: every ticket event, once, into `ticket_events`, and every changed ticket's state
into `tickets` and `ticket_history` (PostgreSQL, the system of record).

Events: a consumer group on each ticket stream; a batch is written in one transaction and acked to
Redis only after the commit (with dead letters for entries the database refused, in the same MULTI).
Tickets: the store lists each changed ticket in `keys.unrecorded` with its revision on the hash; a
background loop reads the oldest of them, writes their snapshots in one transaction, then takes each
off the list only if its revision did not move meanwhile (so a change made during the write is
recorded on the next pass).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field, model_validator
from redis.asyncio import Redis

from services.recorder.database import Database, Ticket
from services.recorder.handlers import BadSnapshotError, EventRow, event_row, history_rows
from services.recorder.retention import Retention
from services.recorder.words import WordIndex
from shared import streams
from shared.bus import as_str, make_broker, redis_client
from shared.codec import PoisonError
from shared.events import STREAM_EVENTS
from shared.settings import CommonSettings
from shared.store import REVISION_FIELD, keys
from shared.worker import BatchResult, Consumer, Entry, Refused, Worker, sleep_unless

log = logging.getLogger("hotline.recorder")


class RecorderSettings(CommonSettings):
    port: int = 8086
    # Bigger batches than the other workers: a PostgreSQL transaction costs the same for 1 or 1,000 rows.
    batch_size: int = 1000
    # Reads wait this long after a batch that was not full: fewer, bigger transactions (and reads and
    # acks) for a lag that stays well under the settle time of the tickets' states.
    read_linger_ms: int = 250
    snapshot_batch: int = 500
    # Next to the settle time, how often the to-do list is looked at adds little to the lag.
    snapshot_poll_seconds: float = 0.25
    # A ticket changes several times in its first seconds (received, classified, dispatched, tracked by
    # evaluation): it is written once at rest (`_TAKE`), or, if it has not come to rest, this long after
    # its first unrecorded change, or twice as long as the tickets now coming to rest took to get there
    # if that is longer (under saturation the loop takes 1-9 s; a ticket written half-way is written
    # again at rest), up to `settle_max_seconds`.
    settle_seconds: float = Field(default=5.0, ge=0)
    settle_max_seconds: float = Field(default=60.0, ge=0)
    # Tickets a replica takes off the to-do list are hidden from the other replicas this long (longer than
    # a pass), so each state is written by one of them; a replica that dies leaves them to the others then.
    snapshot_lease_seconds: float = Field(default=60.0, gt=0)
    pool_size: int = 4
    # A closed ticket leaves Redis this long after its last change, once recorded.
    hot_retention_days: float = Field(default=30.0, ge=0)
    retention_sweep_seconds: float = Field(default=60.0, gt=0)
    # The console's word index, filled off the record's writes (services/recorder/words.py): how often,
    # how many tickets per call, and above how many unrecorded tickets it waits for the recorder.
    word_index_seconds: float = Field(default=1.0, gt=0)
    word_index_batch: int = Field(default=500, gt=0)
    word_index_hold_above: int = Field(default=1000, ge=0)
    # Held off longer than this, the pass indexes a batch each time anyway: a load that keeps the recorder
    # behind for good would otherwise leave search reading an ever larger pending set.
    word_index_max_hold_seconds: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _needs_database(self) -> RecorderSettings:
        if not self.database_url:
            raise ValueError("DATABASE_URL is not set: the recorder writes to PostgreSQL")
        return self


# Takes the oldest settled tickets of the to-do list for one replica and reads them: each stays listed
# (so it is never evicted unrecorded) but scored at the end of the lease, where the other replicas'
# takes do not reach. A ticket has settled once it is at rest, or some time after its first unrecorded
# change whatever its state (`settle_seconds`). At rest: its latest dispatch counted by evaluation (the
# last write of a ticket's first run through the loop), or a duplicate (no dispatch follows). Waiting for
# rest rather than for a fixed time is what writes a ticket once when the loop is slow (under saturation
# a ticket takes seconds to get through), and soon when it is fast. Taken and read in one script: one
# round trip, and the state read is the one taken. The hashes are read by name, as the list holds ticket
# ids (a single Redis, as the store's scripts that keep the list assume). The loop moves tickets in
# about the order they came, so past a run of listed tickets not at rest the rest of the list is not at
# rest either: the look stops there (one it passed over is taken later, at rest or settled).
# KEYS: the list; ARGV: now, the settled cutoff, how many, the end of the lease, the hashes' key prefix,
# the histories' key suffix, how many listed tickets to look at, how many in a row not at rest.
# Returns, for each ticket taken: its id, its hash (HGETALL's flat list), its whole history, when it
# first changed, and 1 if it was taken at rest (else 0).
_TAKE = """
local settled, want, look = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[7])
local listed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, look)
local out, taken, unrest = {}, 0, 0
for i = 1, #listed, 2 do
  local id = listed[i]
  local key = ARGV[5] .. id
  local h = redis.call('HMGET', key, 'status', 'dispatched_at', 'eval_dispatched_at')
  local rest = h[1] == 'duplicate' or (h[2] and h[2] == h[3])
  if rest then unrest = 0 else unrest = unrest + 1 end
  if rest or tonumber(listed[i + 1]) <= settled then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[4], id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', key)
    out[#out + 1] = redis.call('LRANGE', key .. ARGV[6], 0, -1)
    out[#out + 1] = listed[i + 1]
    out[#out + 1] = rest and 1 or 0
    taken = taken + 1
    if taken >= want then break end
  elseif unrest >= tonumber(ARGV[8]) then
    break
  end
end
return out
"""

_HISTORY_SUFFIX = keys.history("").removeprefix(keys.ticket(""))
# How many listed tickets a take looks at (in batches), and after how many in a row not at rest it stops.
_LOOK_AT = 2
_UNREST = 32

# Takes recorded tickets off the to-do list, each only if its revision is still the one written; one
# that changed since it was taken is listed again as changed then (the store's ZADD NX kept the lease's
# score), to be written once settled.
# KEYS: the list, then each ticket's hash; ARGV: when they were taken, then ticket id and recorded
# revision, pairwise.
_FORGET = """
local n = 0
for i = 2, #KEYS do
  local id, rev = ARGV[2 * i - 2], tonumber(ARGV[2 * i - 1])
  local now = tonumber(redis.call('HGET', KEYS[i], 'rev') or '0')
  if now <= rev then
    n = n + redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
  end
end
return n
"""


class RecorderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "hotline_recorder_rows", "Rows written to PostgreSQL, by table", ["table"], registry=registry
        )
        self.refused = Counter(
            "hotline_recorder_refused",
            "Events or ticket states PostgreSQL refused (dead-lettered), by table",
            ["table"],
            registry=registry,
        )
        self.unrecorded = Gauge(
            "hotline_recorder_unrecorded_tickets",
            "Tickets changed in Redis and not yet written to PostgreSQL",
            registry=registry,
        )
        self.oldest = Gauge(
            "hotline_recorder_oldest_unrecorded_seconds",
            "Age of the oldest change not yet written to PostgreSQL (the recorder's lag)",
            registry=registry,
        )
        # Named and labelled as the deploy's alert reads it (HotlineDatabaseUnreachable), service by service.
        self.database_up = Gauge(
            "hotline_database_up", "1 while PostgreSQL answers this service", ["service"], registry=registry
        ).labels("recorder")


class RecorderWorker(Worker):
    """The shared worker's read, claim, trim and metrics loops, with a batch that goes to PostgreSQL."""

    def __init__(
        self,
        *,
        database: Database,
        recorder_metrics: RecorderMetrics,
        snapshot_batch: int,
        snapshot_poll: float,
        settle: float,
        settle_max: float,
        lease: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot_batch = snapshot_batch
        self.settle, self.settle_max = settle, settle_max
        # How long the tickets taken at rest by the last pass that took any had taken to come to rest.
        self._rest_age = 0.0
        self.lease = lease
        self._take = self.redis.register_script(_TAKE)
        self.snapshot_poll = snapshot_poll
        self.database = database
        self.recorder_metrics = recorder_metrics
        self._history_seen: dict[str, int] = {}
        database.on_state = self._database_state
        recorder_metrics.database_up.set(0)

    def _database_state(self, up: bool) -> None:
        self.recorder_metrics.database_up.set(1 if up else 0)
        if up:
            log.info("PostgreSQL reachable")

    # -- events ---------------------------------------------------------------------------------------

    def read_groups(self) -> list[list[Consumer[Any]]]:
        # One XREADGROUP for every stream: a read is one transaction and one ack, not one per stream.
        return [self.consumers]

    async def process(
        self, consumer: Consumer[Any], entries: list[Entry], *, cut_off_first: bool = False
    ) -> BatchResult:
        return (await self._record([(consumer, entries)]))[0]

    async def process_read(self, batches: Sequence[tuple[Consumer[Any], list[Entry]]]) -> None:
        if batches:
            await self._record(batches)

    async def _record(self, batches: Sequence[tuple[Consumer[Any], list[Entry]]]) -> list[BatchResult]:
        """The events of the streams' batches in one transaction, then the dead letters and the acks of
        all in one MULTI; one result per batch."""
        started = time.perf_counter()
        rows: list[tuple[int, bytes]] = []  # the batch and entry of each record
        records: list[EventRow] = []
        dead: list[list[Refused]] = [[] for _ in batches]
        for n, (consumer, entries) in enumerate(batches):
            for entry_id, fields in entries:
                try:
                    records.append(event_row(consumer.stream, fields))
                    rows.append((n, entry_id))
                except PoisonError as exc:
                    dead[n].append(Refused(entry_id, fields, "invalid", str(exc), 1))
                except Exception as exc:  # a corrupt envelope can fail anywhere in the parser
                    dead[n].append(Refused(entry_id, fields, "undecodable", repr(exc)[:500], 1))
        refused = await self.database.until_done(lambda: self.database.write_events(records), self._stop)
        fields_of: dict[int, dict[bytes, dict[bytes, bytes]]] = {}  # only when something was refused
        for index, reason in refused:
            n, entry_id = rows[index]
            if n not in fields_of:
                fields_of[n] = dict(batches[n][1])
            fields = fields_of[n][entry_id]
            dead[n].append(Refused(entry_id, fields, "refused_by_database", reason, 1))
        async with self.redis.pipeline(transaction=True) as pipe:
            for (consumer, entries), buried in zip(batches, dead, strict=True):
                for d in buried:
                    self._queue_dead(pipe, consumer, d)
                pipe.xack(consumer.stream, consumer.group, *(entry_id for entry_id, _ in entries))
            await pipe.execute()

        seconds = time.perf_counter() - started
        written_of = [0] * len(batches)
        for n, _ in rows:
            written_of[n] += 1
        for index, _ in refused:
            written_of[rows[index][0]] -= 1
        rm = self.recorder_metrics
        rm.refused.labels("ticket_events").inc(len(refused))
        results = []
        for n, (consumer, entries) in enumerate(batches):
            stream, m = consumer.stream, self.metrics
            written = written_of[n]
            rm.rows.labels("ticket_events").inc(written)
            m.batch_seconds.labels(self.service, stream).observe(seconds)
            m.batch_size.labels(self.service, stream).observe(len(entries))
            m.events.labels(self.service, stream, "ok").inc(written)
            for d in dead[n]:
                m.events.labels(self.service, stream, "dead_letter").inc()
                m.dead_letters.labels(self.service, stream, d.reason).inc()
                log.error(
                    "recorder: %s entry %s dead-lettered (%s): %s",
                    stream,
                    as_str(d.entry_id),
                    d.reason,
                    d.error,
                )
            dead_ids = [d.entry_id for d in dead[n]]
            skip = set(dead_ids)
            done = [entry_id for entry_id, _ in entries if entry_id not in skip]
            results.append(BatchResult(done=done, dead=dead_ids))
        return results

    # -- tickets --------------------------------------------------------------------------------------

    async def record_tickets_once(self) -> int:
        """Write the oldest changed tickets' states; returns how many were taken off the to-do list."""
        taken_at = time.time()
        taken = await self._take(
            keys=[keys.unrecorded],
            args=[
                taken_at,
                taken_at - max(self.settle, min(self.settle_max, 2 * self._rest_age)),
                self.snapshot_batch,
                taken_at + self.lease,
                keys.ticket(""),
                _HISTORY_SUFFIX,
                _LOOK_AT * self.snapshot_batch,
                _UNREST,
            ],
        )
        if not taken:
            return 0
        snapshots: list[Ticket] = []
        gone: list[tuple[str, int]] = []
        bad: list[tuple[str, int, str]] = []
        await self.database.until_done(self.database.pool, self._stop)
        columns = self.database.columns
        assert columns is not None
        rest_ages = [taken_at - float(taken[n + 3]) for n in range(0, len(taken), 5) if taken[n + 4]]
        if rest_ages:
            self._rest_age = max(rest_ages)
        for n in range(0, len(taken), 5):
            # The client does not decode replies: bytes, decoded here without as_str's check per value.
            ticket_id, flat, history = taken[n].decode(), taken[n + 1], taken[n + 2]
            fields = dict(zip(map(bytes.decode, flat[::2]), map(bytes.decode, flat[1::2]), strict=True))
            rev = int(fields.get(REVISION_FIELD, "0") or 0)
            if not fields:
                gone.append((ticket_id, rev))  # deleted since it changed: nothing left to record
                continue
            start = self._history_seen.get(ticket_id, 0)
            try:
                row = columns.row(ticket_id, fields)
                received = row[columns.received_at]
                rows = history_rows(ticket_id, start, history[start:], received)
            except BadSnapshotError as exc:
                bad.append((ticket_id, rev, str(exc)))
                continue
            snapshots.append(Ticket(ticket_id, rev, row, rows))
        refused = await self.database.until_done(lambda: self.database.write_tickets(snapshots), self._stop)
        refused_at = {index for index, _ in refused}
        bad += [(snapshots[i].ticket_id, snapshots[i].rev, reason) for i, reason in refused]
        recorded = [t for i, t in enumerate(snapshots) if i not in refused_at]
        for t in recorded:
            self._history_seen[t.ticket_id] = (
                (t.history[-1][1] + 1) if t.history else self._history_seen.get(t.ticket_id, 0)
            )
        if len(self._history_seen) > 200_000:  # a cache of positions already written, not a record
            self._history_seen.clear()
        forget = [(t.ticket_id, t.rev) for t in recorded] + gone + [(t, rev) for t, rev, _ in bad]
        async with self.redis.pipeline(transaction=True) as pipe:
            for ticket_id, rev, reason in bad:
                pipe.xadd(
                    streams.RECORDER_DLQ,
                    {"ticket_id": ticket_id, "rev": rev, "reason": "refused_by_database", "error": reason},
                    maxlen=self.settings.stream_maxlen,
                    approximate=True,
                )
            if forget:
                # EVAL, not EVALSHA: a registered script in a pipeline costs a SCRIPT EXISTS round trip.
                ticket_keys = [keys.ticket(t) for t, _ in forget]
                args = [taken_at, *(a for t, rev in forget for a in (t, rev))]
                pipe.eval(_FORGET, 1 + len(forget), keys.unrecorded, *ticket_keys, *args)
            await pipe.execute()
        rm = self.recorder_metrics
        rm.rows.labels("tickets").inc(len(recorded))
        rm.rows.labels("ticket_history").inc(sum(len(t.history) for t in recorded))
        if bad:
            rm.refused.labels("tickets").inc(len(bad))
            for ticket_id, rev, reason in bad:
                log.error(
                    "recorder: ticket %s (rev %d) not recorded, dead-lettered: %s", ticket_id, rev, reason
                )
        return len(forget)

    async def observe_unrecorded(self) -> None:
        count = await self.redis.zcard(keys.unrecorded)
        oldest = await self.redis.zrange(keys.unrecorded, 0, 0, withscores=True)
        self.recorder_metrics.unrecorded.set(count)
        age = time.time() - float(oldest[0][1]) if oldest else 0.0
        self.recorder_metrics.oldest.set(max(0.0, age))

    async def tickets_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                full = await self.record_tickets_once() >= self.snapshot_batch
                await self.observe_unrecorded()
            except Exception:
                log.exception("recorder: writing ticket states failed; trying again")
                full = False
            if not full:
                await sleep_unless(stop, self.snapshot_poll)

    async def stop_background(self) -> None:
        await super().stop_background()
        await self.database.close()


def build(settings: RecorderSettings | None = None) -> tuple[RecorderWorker, AsgiFastStream]:
    settings = settings or RecorderSettings()
    redis: Redis = redis_client(settings.redis_url)
    registry = CollectorRegistry()
    assert settings.database_url is not None
    database = Database(settings.database_url, settings.pool_size)

    async def no_handler(events: list[Any]) -> list[Any]:  # process() does the work
        raise NotImplementedError

    worker = RecorderWorker(
        service="recorder",
        settings=settings,
        redis=redis,
        consumers=[
            Consumer(s, streams.RECORDER, STREAM_EVENTS[s], no_handler) for s in streams.TICKET_STREAMS
        ],
        registry=registry,
        database=database,
        recorder_metrics=RecorderMetrics(registry),
        snapshot_batch=settings.snapshot_batch,
        snapshot_poll=settings.snapshot_poll_seconds,
        settle=settings.settle_seconds,
        settle_max=settings.settle_max_seconds,
        lease=settings.snapshot_lease_seconds,
    )
    worker.background.append(worker.tickets_loop)
    retention = Retention(
        redis,
        database,
        timedelta(days=settings.hot_retention_days),
        settings.retention_sweep_seconds,
        registry,
    )
    worker.background.append(retention.loop)
    words = WordIndex(
        redis,
        database,
        interval=settings.word_index_seconds,
        batch=settings.word_index_batch,
        hold_above=settings.word_index_hold_above,
        max_hold=settings.word_index_max_hold_seconds,
        registry=registry,
    )
    worker.background.append(words.loop)
    return worker, worker.asgi(make_broker(settings))
