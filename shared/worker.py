"""The batch-consuming worker runtime every service shares.

A service declares `Consumer`s (stream, group, event model, batch handler). For each, the worker runs
an XREADGROUP loop (new entries, in batches) and an XAUTOCLAIM loop (entries a dead or stuck consumer
left pending). Entries are in faststream's binary format and the process is an `AsgiFastStream` app.
Each batch is decoded entry by entry, handed to the handler, and its effects, dead letters and XACK
are committed in one MULTI/EXEC, so outputs are never published without the ack or acked without
being published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.redis import RedisBroker
from prometheus_client import CollectorRegistry, make_asgi_app
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from shared import streams
from shared.bus import RoundTrip, as_str, redis_ready
from shared.codec import DATA_FIELD, PoisonError, decode, pack
from shared.effects import BatchHandler, Effects
from shared.events import Event
from shared.metrics import WorkerMetrics
from shared.rehydration import close_readers
from shared.settings import CommonSettings
from shared.store import TicketStore, check_write

log = logging.getLogger("hotline.worker")

E = TypeVar("E", bound=Event)
Entry = tuple[bytes, dict[bytes, bytes]]

# Claimed entries delivered more often than this (read, then claimed once) were taken over before and
# never finished: the claimer handles them one at a time (`Worker.claim_once`).
ISOLATE_AFTER = 2


@dataclass(frozen=True)
class Consumer(Generic[E]):
    stream: str
    group: str
    model: type[E]
    handle: BatchHandler[E]
    # The writer its writes are checked and applied as (shared/contract.py): its group, unless it writes
    # another's fields as a part of that service (the urgency reviewer writes as the classifier).
    writes_as: str | None = None

    @property
    def scope(self) -> str:
        return self.writes_as or self.group


@dataclass
class Refused:
    """An entry that goes to its stream's dead-letter queue instead of being handled, with the reason (a
    worker's own, or a consumer such as the recorder that reads entries itself)."""

    entry_id: bytes
    fields: dict[bytes, bytes]
    reason: str
    error: str
    deliveries: int


# Delete a consumer only if it holds nothing: DELCONSUMER drops its pending entries from the group.
_REAP = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""

# Redis < 7 has no lag field in XINFO GROUPS: the entries past the group's last-delivered id are counted
# on the server. Reading them with XRANGE into Python moved up to 10,000 whole entries per stream every
# 5 s, about 7% of the recorder's CPU at saturation on the embedded Redis (6.2).
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
"""


class _BatchFailed(Exception):
    """The handler failed on a batch of several events (the cause): `process` goes one at a time."""


@dataclass
class BatchResult:
    """What happened to one batch: used by metrics and by tests."""

    done: list[bytes] = field(default_factory=list)
    retry: list[bytes] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        *,
        service: str,
        settings: CommonSettings,
        redis: Redis,
        consumers: Sequence[Consumer[Any]],
        background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.redis = redis
        self.store = TicketStore(redis)
        self.consumers = list(consumers)
        self.background = list(background)
        self.registry = registry or CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry, service)
        self._stop = asyncio.Event()
        self._reap = redis.register_script(_REAP)
        self._count_after = redis.register_script(_COUNT_AFTER)
        self._tasks: list[asyncio.Task[None]] = []

    # -- the batch: decode, handle, commit -------------------------------------------------------

    async def process(
        self, consumer: Consumer[Any], entries: list[Entry], *, cut_off_first: bool = False
    ) -> BatchResult:
        """Decode, handle and commit one batch; an entry that cannot be done is retried or dead-lettered."""
        started = time.perf_counter()
        fields_of = dict(entries)
        good, dead = self._decode(consumer, entries)
        if cut_off_first:
            good = await self._cut_off_killer(consumer, entries, good, dead)
        try:
            results, failed = await self._handle(consumer, good)
        except _BatchFailed as exc:
            return await self._one_at_a_time(consumer, entries, exc, cut_off_first)
        retry = await self._retry_or_bury(consumer, failed, fields_of, dead)
        for entry_id, why in (await self._commit(consumer, results, dead, fields_of)).items():
            # Committed and acked, but a write or publish of it failed inside the transaction.
            results.pop(entry_id, None)
            dead.append(Refused(entry_id, fields_of[entry_id], "commit_error", why, 1))
        self._observe(consumer, len(entries), good, results, retry, dead, started)
        return BatchResult(done=list(results), retry=retry, dead=[d.entry_id for d in dead])

    def _decode(
        self, consumer: Consumer[Any], entries: list[Entry]
    ) -> tuple[list[tuple[bytes, Event]], list[Refused]]:
        """The events of the entries, and a dead letter for each entry that is not one."""
        dead: list[Refused] = []
        good: list[tuple[bytes, Event]] = []
        for entry_id, fields in entries:
            try:
                good.append((entry_id, decode(fields, consumer.model)))
            except PoisonError as exc:
                dead.append(Refused(entry_id, fields, "invalid", str(exc), 1))
            except Exception as exc:  # a corrupt envelope can fail anywhere in the parser
                dead.append(Refused(entry_id, fields, "undecodable", repr(exc)[:500], 1))
        return good, dead

    async def _cut_off_killer(
        self,
        consumer: Consumer[Any],
        entries: list[Entry],
        good: list[tuple[bytes, Event]],
        dead: list[Refused],
    ) -> list[tuple[bytes, Event]]:
        """A poison entry that kills the process never raises here: cut it off by its delivery count.
        Only the first entry: see `claim_once` for why it is the one the last attempt died on."""
        if not good or good[0][0] != entries[0][0]:
            return good
        entry_id = good[0][0]
        n = (await self._delivery_counts(consumer.stream, consumer.group, [entry_id])).get(entry_id, 1)
        if n <= max(self.settings.max_deliveries, ISOLATE_AFTER + 1):
            return good
        dead.append(Refused(entry_id, entries[0][1], "max_deliveries", f"delivered {n} times", n))
        return good[1:]

    async def _one_at_a_time(
        self, consumer: Consumer[Any], entries: list[Entry], exc: _BatchFailed, cut_off_first: bool
    ) -> BatchResult:
        """One bad event must not hold back the batch: find it by processing the entries one at a
        time, each committed before the next is handled, so that a ticket's later events see what its
        earlier ones wrote (handlers thread that state through a batch themselves)."""
        log.warning(
            "%s: a batch of %d from %s failed (%r); one entry at a time",
            self.service,
            len(entries),
            consumer.stream,
            exc.__cause__,
        )
        merged = BatchResult()
        for n, entry in enumerate(entries):
            one = await self.process(consumer, [entry], cut_off_first=cut_off_first and n == 0)
            merged.done += one.done
            merged.retry += one.retry
            merged.dead += one.dead
        return merged

    async def _retry_or_bury(
        self,
        consumer: Consumer[Any],
        failed: dict[bytes, BaseException],
        fields_of: dict[bytes, dict[bytes, bytes]],
        dead: list[Refused],
    ) -> list[bytes]:
        """The failed entries to leave pending for a retry; those out of deliveries join `dead`."""
        retry: list[bytes] = []
        if not failed:
            return retry
        counts = await self._delivery_counts(consumer.stream, consumer.group, list(failed))
        for entry_id, error in failed.items():
            n = counts.get(entry_id, 1)
            if n >= self.settings.max_deliveries:
                dead.append(Refused(entry_id, fields_of[entry_id], "handler_error", repr(error)[:500], n))
            else:
                log.warning(
                    "%s: %s entry %s failed (delivery %d), will retry: %r",
                    self.service,
                    consumer.stream,
                    entry_id.decode(),
                    n,
                    error,
                )
                retry.append(entry_id)
        return retry

    def _observe(
        self,
        consumer: Consumer[Any],
        size: int,
        good: list[tuple[bytes, Event]],
        results: dict[bytes, Effects],
        retry: list[bytes],
        dead: list[Refused],
        started: float,
    ) -> None:
        """The batch's metrics and a log line per dead letter."""
        m, stream = self.metrics, consumer.stream
        m.batch_seconds.labels(self.service, stream).observe(time.perf_counter() - started)
        m.batch_size.labels(self.service, stream).observe(size)
        m.events.labels(self.service, stream, "ok").inc(len(results))
        if retry:
            m.events.labels(self.service, stream, "retry").inc(len(retry))
        for d in dead:
            m.events.labels(self.service, stream, "dead_letter").inc()
            m.dead_letters.labels(self.service, stream, d.reason).inc()
            log.error(
                "%s: %s entry %s dead-lettered (%s): %s",
                self.service,
                stream,
                d.entry_id.decode(),
                d.reason,
                d.error,
            )
        now = time.time()
        latency = m.stage_latency.labels(self.service, stream)
        for entry_id, event in good:
            if entry_id in results and (received := getattr(event, "received_at", None)):
                latency.observe(max(0.0, now - received.timestamp()))

    async def _handle(
        self, consumer: Consumer[Any], good: list[tuple[bytes, Event]]
    ) -> tuple[dict[bytes, Effects], dict[bytes, BaseException]]:
        if not good:
            return {}, {}
        try:
            out = await consumer.handle([event for _, event in good])
            if len(out) != len(good):
                raise RuntimeError(f"handler returned {len(out)} results for {len(good)} events")
            # Checked here rather than at the commit: a refused write is this entry's failure (retried,
            # then dead-lettered with the contract's reason), not the whole transaction's.
            for effects in out:
                for write in effects.writes:
                    check_write(write, consumer.scope)
            return {entry_id: effects for (entry_id, _), effects in zip(good, out, strict=True)}, {}
        except Exception as exc:
            if len(good) == 1:
                return {}, {good[0][0]: exc}
            raise _BatchFailed from exc

    async def _commit(
        self,
        consumer: Consumer[Any],
        results: dict[bytes, Effects],
        dead: list[Refused],
        fields_of: dict[bytes, dict[bytes, bytes]],
    ) -> dict[bytes, str]:
        """Commit the batch; returns the entries a command of which failed inside the transaction.

        MULTI/EXEC does not roll back: when one command fails at run time (a store script hitting a key
        of the wrong type, say), the others, the XACK included, still apply. Such entries are acked by
        then, so they are dead-lettered afterwards (`commit_error`) rather than lost without a trace.
        """
        ack = [*results, *(d.entry_id for d in dead)]
        if not ack:
            return {}
        maxlen = self.settings.stream_maxlen
        owners: list[bytes | None] = []  # the entry each queued command is for
        pipe = RoundTrip(self.redis, transaction=True)
        for entry_id, effects in results.items():
            for write in effects.writes:
                await self.store.apply(write, scope=consumer.scope, pipe=pipe, checked=True)
                owners.append(entry_id)
            for out in effects.publish:
                pipe.xadd(out.stream, {DATA_FIELD: pack(out.event)}, maxlen=maxlen, approximate=True)
                owners.append(entry_id)
        for d in dead:
            self._queue_dead(pipe, consumer, d)
            owners.append(None)
        pipe.xack(consumer.stream, consumer.group, *ack)
        owners.append(None)
        replies = await pipe.execute(raise_on_error=False)
        failed: dict[bytes, str] = {}
        for owner, reply in zip(owners, replies, strict=True):
            if isinstance(reply, Exception):
                if owner is None:  # a dead letter or the ack itself: as if the commit had failed
                    raise reply
                failed.setdefault(owner, f"{type(reply).__name__}: {reply}"[:500])
        if failed:
            pipe = RoundTrip(self.redis, transaction=True)
            for entry_id, error in failed.items():
                dead_one = Refused(entry_id, fields_of[entry_id], "commit_error", error, 1)
                self._queue_dead(pipe, consumer, dead_one)
            await pipe.execute()
        return failed

    def _queue_dead(self, pipe: Pipeline | RoundTrip, consumer: Consumer[Any], d: Refused) -> None:
        """Queue `d`'s dead letter on the consumer's DLQ stream in `pipe`."""
        pipe.xadd(
            streams.dlq(consumer.stream),
            self._dead_fields(consumer, d),
            maxlen=self.settings.stream_maxlen,
            approximate=True,
        )

    def _dead_fields(self, consumer: Consumer[Any], d: Refused) -> dict[Any, Any]:
        return {
            **d.fields,
            b"reason": d.reason.encode(),
            b"error": d.error.encode(),
            b"service": self.service.encode(),
            b"group": consumer.group.encode(),
            b"original_id": d.entry_id,
            b"deliveries": str(d.deliveries).encode(),
            b"dead_at": str(time.time()).encode(),
        }

    async def _delivery_counts(self, stream: str, group: str, ids: list[bytes]) -> dict[bytes, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
            rows = await pipe.execute()
        return {
            entry_id: (row[0]["times_delivered"] if row else 1)
            for entry_id, row in zip(ids, rows, strict=True)
        }

    # -- the claimer: takes over what dead or stuck consumers left pending -----------------------

    async def claim_once(self, consumer: Consumer[Any], start: bytes | str = b"0-0") -> Any:
        """One XAUTOCLAIM pass (COUNT batch_size); returns the cursor to continue from."""
        me = f"{self.settings.consumer_name}-claimer"
        cursor, entries, *rest = await self.redis.xautoclaim(
            consumer.stream,
            consumer.group,
            me,
            self.settings.claim_idle_ms,
            start,
            count=self.settings.batch_size,
        )
        # Pending entries whose data was deleted (MAXLEN past the cap, XDEL): Redis >= 7 drops them from
        # the PEL and names them here; 6.2 returns them as (None, None) and keeps them pending.
        gone: list[bytes] = list(rest[0]) if rest and rest[0] else []
        live = [(i, f) for i, f in entries or [] if i is not None and f is not None]
        if len(live) < len(entries or []):
            gone += await self._drop_deleted(consumer, me)
        if gone:
            await self._record_gone(consumer, gone)
        if live:
            self.metrics.claimed.labels(self.service, consumer.stream).inc(len(live))
            counts = await self._delivery_counts(
                consumer.stream, consumer.group, [entry_id for entry_id, _ in live]
            )
            if max(counts.values()) <= ISOLATE_AFTER:
                # A first takeover (read once, claimed once): the batch as it was read.
                await self.process(consumer, live)
            else:
                # Taken over before and still not finished: one of these may kill its process, and a
                # batch dies whole, so each batch mate would reach max_deliveries with it. One entry at
                # a time, each committed alone: a pass that dies leaves the entries before the killer
                # done, so on the next pass (from 0-0, in id order) the killer is the first entry, the
                # only one `process` cuts off by its delivery count.
                for n, entry in enumerate(live):
                    await self.process(consumer, [entry], cut_off_first=n == 0)
        return cursor

    async def _drop_deleted(self, consumer: Consumer[Any], me: str) -> list[bytes]:
        # Redis 6.2 returns trimmed entries as (None, None) and keeps them pending: ack them away.
        pending = await self.redis.xpending_range(
            consumer.stream, consumer.group, "-", "+", 100, consumername=me
        )
        dropped: list[bytes] = []
        for p in pending:
            if not await self.redis.xrange(consumer.stream, p["message_id"], p["message_id"]):
                await self.redis.xack(consumer.stream, consumer.group, p["message_id"])
                dropped.append(as_str(p["message_id"]).encode())
        return dropped

    async def _record_gone(self, consumer: Consumer[Any], ids: list[bytes]) -> None:
        """Entries delivered but deleted before they were acknowledged: their data is lost, but not
        without a trace: a dead letter (no payload) names each one."""
        error = "deleted from the stream before it was acknowledged (trimmed past the MAXLEN cap?)"
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry_id in ids:
                self._queue_dead(pipe, consumer, Refused(entry_id, {}, "deleted", error, 0))
            await pipe.execute()
        for entry_id in ids:
            self.metrics.dead_letters.labels(self.service, consumer.stream, "deleted").inc()
            log.error("%s: %s entry %s lost: %s", self.service, consumer.stream, as_str(entry_id), error)

    async def _claim_loop(self, consumer: Consumer[Any]) -> None:
        cursor: bytes | str = b"0-0"
        while not self._stop.is_set():
            try:
                cursor = await self.claim_once(consumer, cursor)
            except Exception:
                log.exception("%s: claimer for %s failed; starting over", self.service, consumer.stream)
                cursor = b"0-0"
            if cursor in (b"0-0", "0-0"):
                await sleep_unless(self._stop, min(5.0, self.settings.claim_idle_ms / 4000))

    # -- lag, pending and DLQ gauges ---------------------------------------------------------------

    async def observe_streams(self) -> None:
        m = self.metrics
        for c in self.consumers:
            groups = await self.redis.xinfo_groups(c.stream)
            length = await self.redis.xlen(c.stream)
            m.length.labels(self.service, c.stream).set(length)
            m.maxlen.labels(self.service, c.stream).set(self.settings.stream_maxlen)
            m.dlq_length.labels(self.service, c.stream).set(await self.redis.xlen(streams.dlq(c.stream)))
            for g in groups:
                name = as_str(g["name"])
                if name != c.group:
                    continue
                lag = g.get("lag")
                if lag is None:
                    last = as_str(g["last-delivered-id"])
                    lag = int(await self._count_after(keys=[c.stream], args=[last, 10_000]))
                m.lag.labels(self.service, c.stream, name).set(lag)
                m.pending.labels(self.service, c.stream, name).set(g["pending"])
                age = 0.0
                if g["pending"]:
                    summary = await self.redis.xpending(c.stream, name)
                    # None when the entries were acknowledged since XINFO: nothing pending after all.
                    if summary["min"] is not None:
                        age = max(0.0, time.time() - _id(summary["min"])[0] / 1000)
                m.oldest_pending.labels(self.service, c.stream, name).set(age)

    async def trim_stream(self, stream: str) -> str | None:
        """Trim what every group of `stream` is done with and is past the retention; returns the MINID.

        Unlike MAXLEN, this never drops an entry a group has not read, or read and not yet acknowledged.
        """
        groups = await self.redis.xinfo_groups(stream)
        if not groups:
            return None
        needed: list[tuple[int, int]] = []
        for g in groups:
            needed.append(_id(g["last-delivered-id"]))
            if g["pending"]:
                needed.append(_id((await self.redis.xpending(stream, g["name"]))["min"]))
        retention_floor = (int(time.time() * 1000) - self.settings.stream_retention_seconds * 1000, 0)
        floor = min(*needed, retention_floor)
        if floor <= (0, 0):
            return None
        minid = f"{floor[0]}-{floor[1]}"
        await self.redis.xtrim(stream, minid=minid, approximate=True)
        return minid

    async def reap_consumers(self, consumer: Consumer[Any], idle_ms: int = 3_600_000) -> list[str]:
        """Delete consumers of the group gone idle with nothing pending (each pod restart adds one).

        Only with 0 pending: deleting a consumer that holds entries would make them unclaimable.
        """
        reaped = []
        for info in await self.redis.xinfo_consumers(consumer.stream, consumer.group):
            name = as_str(info["name"])
            mine = name.startswith(self.settings.consumer_name)
            if info["pending"] or info["idle"] <= idle_ms or mine:
                continue
            # Checked again in the same script: it may have taken entries since it was listed.
            if await self._reap(keys=[consumer.stream], args=[consumer.group, name]) >= 0:
                reaped.append(name)
        return reaped

    async def _trim_loop(self) -> None:
        while not self._stop.is_set():
            for c in self.consumers:
                try:
                    await self.trim_stream(c.stream)
                    await self.reap_consumers(c)
                except Exception as exc:
                    log.warning("%s: trimming %s failed: %r", self.service, c.stream, exc)
            await sleep_unless(self._stop, 30.0)

    async def _observe_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.observe_streams()
            except Exception as exc:
                log.warning("%s: stream metrics unavailable: %r", self.service, exc)
            await sleep_unless(self._stop, 5.0)

    # -- wiring ------------------------------------------------------------------------------------

    async def _read_loop(self, consumers: Sequence[Consumer[Any]]) -> None:
        """XREADGROUP `>` in batches, each processed before the next read; several consumers (of one group)
        are read by one XREADGROUP, their batches handed to `process_read` together.

        Our own loop rather than a faststream subscriber: faststream decodes every entry, re-encodes the
        batch as JSON and resolves the handler's dependencies on each batch, which cost as much CPU as the
        work itself (bench/pipeline.py, "Transport"). The entries and the wire format are the same.
        """
        s = self.settings
        of_stream = {c.stream: c for c in consumers}
        group = consumers[0].group
        backoff = 0.1
        while not self._stop.is_set():
            try:
                reply = await self.redis.xreadgroup(
                    group,
                    s.consumer_name,
                    dict.fromkeys(of_stream, ">"),
                    count=s.batch_size,
                    block=s.poll_ms,
                )
            except (RedisError, OSError) as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # The group is gone (a Redis restarted without its data): reading on would skip
                    # or replay at random. Stop as faststream does; the init step recreates groups.
                    log.critical(
                        "%s: %s has no group %s; stopping", self.service, ", ".join(of_stream), group
                    )
                    signal.raise_signal(signal.SIGTERM)
                    return
                log.warning("%s: reading %s failed, retrying: %r", self.service, ", ".join(of_stream), exc)
                await sleep_unless(self._stop, backoff)
                backoff = min(5.0, backoff * 2)
                continue
            backoff = 0.1
            batches = [
                (of_stream[as_str(stream)], entries)
                for stream, entries in cast(list[tuple[bytes, list[Entry]]], reply or [])
                if entries
            ]
            try:
                await self.process_read(batches)
            except Exception:
                # Nothing was acked: the claimer retries the batch after claim_idle_ms.
                log.exception("%s: batch of %s failed", self.service, ", ".join(of_stream))
            if s.read_linger_ms and max((len(e) for _, e in batches), default=0) < s.batch_size:
                # Not a full batch: let the streams fill while we wait, so the next read is one batch of
                # many entries instead of many batches of a few (each batch costs a commit).
                await sleep_unless(self._stop, s.read_linger_ms / 1000)

    async def process_read(self, batches: Sequence[tuple[Consumer[Any], list[Entry]]]) -> None:
        """The batches of one read, one stream each; a worker that can commit several at once overrides."""
        for consumer, entries in batches:
            await self.process(consumer, entries)

    def read_groups(self) -> list[list[Consumer[Any]]]:
        """The consumers each read loop reads: one loop per stream (a worker of one group may read all
        its streams in one loop)."""
        return [[c] for c in self.consumers]

    async def start_background(self) -> None:
        self._stop.clear()
        for consumers in self.read_groups():
            self._tasks.append(asyncio.create_task(self._read_loop(consumers)))
        for c in self.consumers:
            self._tasks.append(asyncio.create_task(self._claim_loop(c)))
        self._tasks.append(asyncio.create_task(self._observe_loop()))
        self._tasks.append(asyncio.create_task(self._trim_loop()))
        for task in self.background:
            self._tasks.append(asyncio.create_task(task(self._stop)))

    async def stop_background(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await close_readers()

    def asgi(self, broker: RedisBroker, extra_routes: Sequence[tuple[str, Any]] = ()) -> AsgiFastStream:
        """The service's process: the read and claim loops plus /metrics, /livez and /readyz."""
        redis = self.redis

        @get(include_in_schema=False)
        async def livez(scope: Any) -> AsgiResponse:
            # The process and its event loop answer; Redis is deliberately not checked here.
            return AsgiResponse(b"ok", 200)

        @get(include_in_schema=False)
        async def readyz(scope: Any) -> AsgiResponse:
            if not await redis_ready(redis):
                return AsgiResponse(b"redis unavailable", 503)
            return AsgiResponse(b"ready", 200)

        return AsgiFastStream(
            broker,
            asgi_routes=[
                ("/metrics", make_asgi_app(self.registry)),
                ("/livez", livez),
                ("/readyz", readyz),
                *extra_routes,
            ],
            after_startup=[self.start_background],
            on_shutdown=[self.stop_background],
            logger=logging.getLogger(f"hotline.{self.service}"),
        )


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def every(
    stop: asyncio.Event, seconds: float, work: Callable[[], Awaitable[object]], log: logging.Logger, what: str
) -> None:
    """Run `work` now, then `seconds` after each pass ends, until `stop` is set. A pass that fails (Redis
    or the database away) is logged and the next one tries again: a background pass leaves what it did
    not do to do, so nothing is lost by skipping one."""
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("%s failed; trying again", what)
        await sleep_unless(stop, seconds)


def _id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = as_str(value).partition("-")
    return int(ms), int(seq or 0)
