"""The benchmark load generator: what it sends, and how it counts (against a local asyncio server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.intake.settings import DEV_SECRET
from shared import standard_webhooks
from tools.loadgen import closed_loop, open_loop, percentile, signed_telephony_requests


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """Answers each request 202 with its call id after 20 ms, one request at a time per connection."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                seen.append(head + body)
                await asyncio.sleep(0.02)
                answer = json.dumps({"ticket_id": json.loads(body)["call_id"]}).encode()
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1], seen
    srv.close()


def requests(port: int, n: int) -> list[bytes]:
    calls = [{"call_id": f"c{i}", "transcript": "停水"} for i in range(n)]
    return signed_telephony_requests("127.0.0.1", port, DEV_SECRET, calls)


def test_requests_are_signed_for_intake() -> None:
    (raw,) = requests(8080, 1)
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert head.startswith(b"POST /v1/webhooks/telephony HTTP/1.1\r\n")
    assert int(headers["Content-Length"]) == len(body)
    assert standard_webhooks.verify([DEV_SECRET], headers, body) == "msg_c0"


async def test_open_loop_counts_latency_from_the_due_time(server: tuple[int, list[bytes]]) -> None:
    port, seen = server
    # 10 requests due within 10 ms on one connection that answers in 20 ms each: the last one waits
    # for the nine before it, and that wait is part of its latency.
    result = await open_loop("127.0.0.1", port, requests(port, 10), rate=1000, connections=1)
    assert result.answered == 10 and len(seen) == 10 and result.statuses == {202: 10}
    assert max(result.latencies) >= 0.18
    assert [json.loads(b)["ticket_id"] for b in result.bodies] == [f"c{i}" for i in range(10)]


async def test_closed_loop_sends_every_request_once(server: tuple[int, list[bytes]]) -> None:
    port, seen = server
    result = await closed_loop("127.0.0.1", port, requests(port, 12), connections=4)
    assert result.answered == 12 and result.errors == 0 and len(seen) == 12


async def test_refused_connections_are_counted_not_raised() -> None:
    result = await open_loop("127.0.0.1", 1, requests(1, 3), rate=1000, connections=2)
    assert result.answered == 0 and result.errors == 3


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0 and percentile([], 0.5) == 0
