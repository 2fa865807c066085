"""Script calls batched into shared round trips behave as separate calls; a RoundTrip sends its commands
as one MULTI/EXEC or pipelined, and reads every reply."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from shared.bus import RoundTrip, ScriptBatcher, redis_client
from tools.embedded import free_port

pytestmark = pytest.mark.redis

SCRIPT = """
if ARGV[1] == 'fail' then return redis.error_reply('refused ' .. KEYS[1]) end
return {redis.call('INCR', KEYS[1]), ARGV[1]}
"""


async def test_concurrent_calls_each_get_their_own_reply(redis: Redis) -> None:
    batcher = ScriptBatcher(redis, SCRIPT)
    replies = await asyncio.gather(*(batcher([f"bus:n:{i % 3}"], [f"call {i}"]) for i in range(60)))
    assert [r[1] for r in replies] == [f"call {i}".encode() for i in range(60)]
    assert sorted(r[0] for r in replies) == sorted(n for _ in range(3) for n in range(1, 21))
    assert await batcher(["bus:n:0"], ["again"]) == [21, b"again"]


async def test_a_failing_call_fails_alone(redis: Redis) -> None:
    batcher = ScriptBatcher(redis, SCRIPT)
    results = await asyncio.gather(
        batcher(["bus:a"], ["ok"]),
        batcher(["bus:b"], ["fail"]),
        batcher(["bus:c"], ["ok"]),
        return_exceptions=True,
    )
    assert results[0] == [1, b"ok"] and results[2] == [1, b"ok"]
    assert isinstance(results[1], ResponseError) and "refused bus:b" in str(results[1])


async def test_calls_survive_redis_forgetting_its_scripts(redis: Redis) -> None:
    batcher = ScriptBatcher(redis, SCRIPT)
    assert await batcher(["bus:s"], ["x"]) == [1, b"x"]
    await redis.script_flush()
    replies = await asyncio.gather(*(batcher(["bus:s"], [str(i)]) for i in range(5)))
    assert sorted(r[0] for r in replies) == [2, 3, 4, 5, 6]
    assert int(await redis.get("bus:s")) == 6  # each call ran exactly once


async def test_an_unreachable_redis_fails_every_call() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    batcher = ScriptBatcher(client, SCRIPT)
    try:
        results = await asyncio.gather(*(batcher(["k"], ["x"]) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
    finally:
        await client.aclose()


async def test_an_unexpected_failure_of_the_round_trip_is_an_unreachable_redis_for_every_call(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    batcher = ScriptBatcher(redis, SCRIPT)

    async def broken(batch: object) -> list[object]:
        raise AttributeError("'NoneType' object has no attribute 'write'")  # a client bug mid-reconnect

    batcher._run = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="hotline.bus"):
        results = await asyncio.gather(*(batcher(["k"], ["x"]) for _ in range(3)), return_exceptions=True)
    # Callers answer a RedisError with 503 and a retry; a bare AttributeError would have been a 500.
    assert all(isinstance(r, ConnectionError) and "AttributeError" in str(r) for r in results)
    assert isinstance(results[0].__cause__, AttributeError)
    assert [r.exc_info is not None for r in caplog.records] == [True]  # logged once, with its traceback


async def test_a_transaction_gives_each_reply_and_a_run_time_failure_in_its_place(redis: Redis) -> None:
    await redis.set("bus:string", "x")
    tx = RoundTrip(redis, transaction=True)
    tx.eval(SCRIPT, 1, "bus:t", "one")
    tx.xadd("bus:stream", {b"k": b"v"}, maxlen=1000)
    tx.eval("return redis.call('HSET', KEYS[1], 'f', 'v')", 1, "bus:string")  # WRONGTYPE when it runs
    tx.xack("bus:stream", "g", b"1-1")
    replies = await tx.execute(raise_on_error=False)
    assert replies[0] == [1, b"one"] and replies[3] == 0
    assert (await redis.xrange("bus:stream"))[0][0] == replies[1]
    assert isinstance(replies[2], ResponseError) and "WRONGTYPE" in str(replies[2])
    assert await redis.ping()  # the connection went back to the pool with nothing left to read


async def test_a_command_refused_when_queued_aborts_the_transaction(redis: Redis) -> None:
    tx = RoundTrip(redis, transaction=True)
    tx.xadd("bus:stream", {b"k": b"v"}, maxlen=1000)
    tx.commands.append(("XACK", "bus:stream"))  # wrong number of arguments: refused by MULTI
    with pytest.raises(ResponseError, match="wrong number of arguments"):
        await tx.execute()
    assert await redis.xlen("bus:stream") == 0
    assert await redis.ping()


async def test_a_transaction_to_an_unreachable_redis_fails() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        tx = RoundTrip(client, transaction=True)
        tx.xack("s", "g", b"1-1")
        with pytest.raises(ConnectionError):
            await tx.execute()
    finally:
        await client.aclose()


async def test_pipelined_reads_give_raw_replies_and_raise_a_failure(redis: Redis) -> None:
    await redis.hset("bus:h", mapping={"a": "1", "b": "2"})
    await redis.set("bus:string", "x")
    trip = RoundTrip(redis, transaction=False)
    trip.command("HMGET", "bus:h", "a", "missing")
    trip.command("HGETALL", "bus:h")
    trip.command("GET", "bus:nothing")
    assert await trip.execute() == [[b"1", None], {b"a": b"1", b"b": b"2"}, None]  # RESP3: a map
    trip.command("HGETALL", "bus:string")  # WRONGTYPE
    replies = await trip.execute(raise_on_error=False)
    assert isinstance(replies[3], ResponseError) and replies[2] is None
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await trip.execute()
    assert await redis.ping()
