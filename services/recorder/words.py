"""The console's word index, filled in the background (migration 0007): the triggers on `tickets` only list a
written ticket in `ticket_words_pending`; this pass moves them into `ticket_words` (their keys, GIN-indexed:
characters and ASCII bigrams since migration 0009), a batch per call of `hotline_index_words`, until none is
left.

It holds off while the recorder is behind (more tickets on its to-do list than `hold_above`): during a
burst the database's CPU goes to the record, and the index (since 0009 about as much PostgreSQL CPU a
ticket as the record's own write, three times as much before) catches up after. Search stays exact
meanwhile: it reads the pending tickets as well (services/console/history.py). Under a load that keeps
the recorder behind for longer than `max_hold`, the pass indexes one batch a pass anyway, so the pending
set (and searches over it) cannot grow without bound; the pending gauge says how far behind it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis

from services.recorder.database import Database
from shared.store import keys
from shared.worker import every

log = logging.getLogger("hotline.recorder.words")


@dataclass
class Pass:
    indexed: int = 0
    held: bool = False  # stopped (or never started) because the recorder was behind


class WordIndex:
    """Every `interval`, `hotline_index_words(batch)` until nothing is pending, unless the recorder's
    to-do list (what `hotline_recorder_unrecorded_tickets` shows) is longer than `hold_above`."""

    def __init__(
        self,
        redis: Redis,
        database: Database,
        *,
        interval: float,
        batch: int,
        hold_above: int,
        max_hold: float,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis, self.database = redis, database
        self.interval, self.batch, self.hold_above, self.max_hold = interval, batch, hold_above, max_hold
        self.registry = registry
        self.clock = clock
        self._held_since: float | None = None
        self.pending = Gauge(
            "hotline_search_index_pending_tickets",
            "Tickets recorded and not yet in the console's word index (searched by ILIKE meanwhile)",
            registry=registry,
        )
        self.indexed = Counter(
            "hotline_search_indexed_tickets", "Tickets added to the console's word index", registry=registry
        )
        self.held = Counter(
            "hotline_search_index_held_passes",
            "Indexing passes put off because the recorder was behind on recording",
            registry=registry,
        )

    async def _behind(self) -> bool:
        return int(await self.redis.zcard(keys.unrecorded)) > self.hold_above

    async def _index(self) -> int:
        return int(await (await self.database.pool()).fetchval("SELECT hotline_index_words($1)", self.batch))

    async def _count(self) -> int:
        return int(await (await self.database.pool()).fetchval("SELECT count(*) FROM ticket_words_pending"))

    async def _index_batch(self, stop: asyncio.Event) -> int:
        done = await self.database.until_done(self._index, stop)
        self.indexed.inc(done)
        return done

    async def once(self, stop: asyncio.Event) -> Pass:
        result = Pass()
        while not stop.is_set():
            # Looked at before each batch: a burst that starts during a catch-up gets the CPU back.
            if await self._behind():
                now = self.clock()
                if self._held_since is None:
                    self._held_since = now
                elif now - self._held_since >= self.max_hold:
                    result.indexed += await self._index_batch(stop)  # held too long: a batch anyway
                result.held = True
                self.held.inc()
                break
            self._held_since = None
            done = await self._index_batch(stop)
            result.indexed += done
            if done < self.batch:
                break
        self.pending.set(await self.database.until_done(self._count, stop))
        return result

    async def loop(self, stop: asyncio.Event) -> None:
        await every(stop, self.interval, lambda: self.once(stop), log, "word index: a pass")
