"""Connections to the bus: the Redis client, the faststream broker, and the init step for groups."""

from __future__ import annotations

import logging
from typing import Any, cast

import hiredis
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError
from redis.typing import EncodableT

from shared import streams
from shared.settings import CommonSettings


class PackedConnection(Connection):
    """redis-py's asyncio connection packs commands in Python, a large part of a worker's CPU
    (bench/pipeline.py, "Transport"); hiredis packs them in C to the same bytes (tests/unit/test_bus.py),
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


def redis_client(url: str) -> Redis:
    options: dict[str, Any] = {}
    if url.startswith("redis://"):  # rediss:// and unix:// bring their own class
        options["connection_class"] = PackedConnection
    return Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30, **options
    )


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
