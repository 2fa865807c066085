"""Connections to the bus: the Redis client, the faststream broker, and the init step for groups."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import hiredis
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from shared import streams
from shared.settings import CommonSettings

log = logging.getLogger("hotline.bus")


class PackedConnection(Connection):
    """redis-py's asyncio connection packs commands in Python, a large part of a worker's CPU
    (bench/pipeline.py, "Transport"); hiredis packs them in C to the same bytes (tests/unit/test_wire.py),
    as redis-py's sync client does."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        head = args[0]
        if isinstance(head, str):  # "CONFIG GET" and the like: the server wants the words apart
            args = (*head.encode().split(), *args[1:])
        elif isinstance(head, bytes) and b" " in head:
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(cast(Any, args))]
        except TypeError:  # memoryview, bytearray, or what redis-py refuses: its own packer decides
            return super().pack_command(*args)


def as_str(value: bytes | str | int) -> str:
    """A Redis reply as text: the clients here don't decode responses, so replies are bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def redis_ready(redis: Redis) -> bool:
    """What every service's /readyz answers: Redis replies within 2 s (liveness never asks)."""
    try:
        await asyncio.wait_for(redis.ping(), timeout=2.0)
    except (RedisError, OSError, TimeoutError):
        return False
    return True


T = TypeVar("T")


class BadRedisUrlError(RedisConnectionError, ValueError):
    """A Redis URL the client cannot parse: no Redis to reach, like a refused connection."""


def run_with_redis(url: str, work: Callable[[Redis], Awaitable[T]]) -> T:
    """Run `work` to completion on a client of its own, closed afterwards: for one-shot commands.

    A URL that does not parse raises BadRedisUrlError (a redis ConnectionError), so a command reports it
    with the connection errors rather than as a traceback."""

    async def run() -> T:
        try:
            redis = redis_client(url)
        except ValueError as exc:  # redis-py's message names the fault, not the URL (it may hold a password)
            raise BadRedisUrlError(f"bad Redis URL: {exc}") from None
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def redis_client(url: str) -> Redis:
    options: dict[str, Any] = {}
    if url.startswith("redis://"):  # rediss:// and unix:// bring their own class
        options["connection_class"] = PackedConnection
    return Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30, **options
    )


class RoundTrip:
    """Commands sent in one round trip, as a MULTI/EXEC transaction (a worker's commit) or pipelined (a
    batch's reads), their replies raw (bytes and lists, no redis-py response callbacks).

    The same bytes as redis-py's pipelines, but the replies are read under one timeout: redis-py reads
    each reply (each QUEUED of a transaction too) through its command path under a timer of its own, 20 µs
    of client CPU a ticket for a commit of 95 tickets (an EVAL and an XADD each) against 6-7 µs here. As
    with redis-py, a connection error or a timeout disconnects (no reply is left unread for the pool's next
    user) and the whole round trip is tried again by the client's Retry.
    """

    def __init__(self, redis: Redis, *, transaction: bool) -> None:
        self.redis = redis
        self.transaction = transaction
        self.commands: list[tuple[EncodableT, ...]] = []

    def command(self, *args: EncodableT) -> None:
        self.commands.append(args)

    def eval(self, script: str, numkeys: int, *keys_and_args: EncodableT) -> None:
        self.command("EVAL", script, numkeys, *keys_and_args)

    def xadd(
        self, name: str, fields: Mapping[Any, EncodableT], *, maxlen: int, approximate: bool = True
    ) -> None:
        flat = [x for pair in fields.items() for x in pair]
        self.command("XADD", name, "MAXLEN", "~" if approximate else "=", maxlen, "*", *flat)

    def xack(self, name: str, groupname: str, *ids: EncodableT) -> None:
        self.command("XACK", name, groupname, *ids)

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Each command's reply in order. A command that failed has its error in its place, or raised with
        `raise_on_error` (MULTI does not roll back: the others applied). In a transaction, a command refused
        when queued aborts it all (raised)."""
        if not self.commands:
            return []
        pool = self.redis.connection_pool
        conn = cast(Connection, await pool.get_connection())  # type: ignore[no-untyped-call]
        try:
            replies = cast(
                list[Any],
                await conn.retry.call_with_retry(lambda: self._run(conn), lambda _: conn.disconnect()),
            )
        finally:
            await pool.release(conn)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return replies

    async def _run(self, conn: Connection) -> list[Any]:
        sent = [("MULTI",), *self.commands, ("EXEC",)] if self.transaction else self.commands
        await conn.send_packed_command(conn.pack_commands(sent))
        replies: list[Any] = []
        try:
            # math.inf: no timer per reply (the read disconnects if the outer timeout cancels it)
            async with asyncio.timeout(conn.socket_timeout):
                # A transaction's are OK for MULTI, then QUEUED or the refusal of each command.
                for _ in sent[:-1] if self.transaction else sent:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
                if not self.transaction:
                    return replies
                try:
                    return cast(list[Any], await conn.read_response(timeout=math.inf))
                except ExecAbortError as exc:
                    raise next((r for r in replies if isinstance(r, ResponseError)), exc) from None
        except TimeoutError:
            raise RedisTimeoutError("timeout reading the replies of a round trip") from None


class ScriptBatcher:
    """Calls of one Lua script from concurrent requests, sent together in one pipelined round trip.

    Each call is still its own atomic script with its own reply; only the trips to Redis are shared.
    While one batch is in flight the next calls queue, so under load each trip carries many calls and
    when idle a call goes out at once. Intake's accept script went from one trip per request to a
    fraction of one (bench/pipeline.py).
    """

    def __init__(self, redis: Redis, script: str) -> None:
        self.redis = redis
        self.script = redis.register_script(script)
        self._queue: list[tuple[list[Any], list[Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        return await done

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    replies = await self._run(batch)
                except BaseException as exc:  # the connection failed: every call of the batch fails
                    failure = _as_outage(exc)
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(failure)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (*_, done), reply in zip(batch, replies, strict=True):
                    if not done.done():
                        if isinstance(reply, Exception):
                            done.set_exception(reply)
                        else:
                            done.set_result(reply)
        finally:
            self._sender = None

    async def _run(self, batch: list[tuple[list[Any], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        trip = RoundTrip(self.redis, transaction=False)
        for keys, args, _ in batch:
            trip.command("EVALSHA", self.script.sha, len(keys), *keys, *args)
        replies = await trip.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # Redis lost its scripts (a restart): this call did nothing
                keys, args, _ = batch[i]
                try:
                    replies[i] = await self.script(keys=keys, args=args)  # loads the script, runs the call
                except RedisError as exc:
                    replies[i] = exc
        return replies


def _as_outage(exc: BaseException) -> BaseException:
    """What the calls of a batch whose round trip failed get. Anything but a Redis or socket error (the
    client tripping over a reconnect that races a restart) becomes a Redis connection error: callers
    answer that with a 503 and the caller retries, where a bare exception would be a 500. Its traceback is
    logged (called while it is being handled) for whoever looks into it."""
    if isinstance(exc, RedisError | OSError) or not isinstance(exc, Exception):  # a cancellation stays one
        return exc
    log.exception("script batch: the round trip to Redis failed unexpectedly")
    outage = RedisConnectionError(f"the round trip to Redis failed ({type(exc).__name__})")
    outage.__cause__ = exc
    return outage


def make_broker(settings: CommonSettings) -> RedisBroker:
    # The per-message access log costs 16-18% of a worker's throughput: keep it at DEBUG.
    return RedisBroker(
        settings.redis_url,
        graceful_timeout=settings.graceful_timeout,
        logger=logging.getLogger("hotline.broker"),
        log_level=logging.DEBUG,
    )


async def init_streams(redis: Redis) -> list[tuple[str, str]]:
    """Create every stream and consumer group at id 0 (idempotent); returns the groups created now.

    Run before workers read: faststream would create a missing group at `$` and skip what came before.
    """
    created = []
    for stream, groups in streams.GROUPS.items():
        for group in groups:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
                created.append((stream, group))
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if not groups and not await redis.exists(stream):
            # Streams nobody in the loop reads (review, escalations) still exist for operators' tools.
            await redis.xgroup_create(stream, "operators", id="0", mkstream=True)
    return created


Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def read_range(
    redis: Redis, stream: str, start: str = "-", end: str = "+", count: int | None = None
) -> Entries:
    """XRANGE with the types redis-py leaves open (a client without decode_responses returns bytes)."""
    return cast(Entries, await redis.xrange(stream, start, end, count=count))
