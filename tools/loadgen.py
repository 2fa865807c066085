"""A load generator for benchmarks: pre-built HTTP/1.1 requests over keep-alive connections.

Requests are built (and signed) before the clock starts, so the generator spends its time on sockets,
not on JSON or HMAC. Two modes:
- open loop: request i is due at `start + i / rate`, whether or not earlier ones were answered, and its
  latency counts from that due time, so a stalled server shows up as latency (no coordinated omission);
- closed loop: each connection sends its next request as soon as the previous one is answered, which
  measures the server's saturation throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.standard_webhooks import signed_headers


def http_request(
    host: str, port: int, method: str, path: str, body: bytes, headers: Mapping[str, str]
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode() + body


def signed_telephony_requests(
    host: str,
    port: int,
    secret: str,
    calls: Iterable[Mapping[str, Any]],
    path: str = "/v1/webhooks/telephony",
) -> list[bytes]:
    """One signed Standard Webhooks request per call (each call needs its own `call_id`)."""
    out = []
    for call in calls:
        body = json.dumps(call, ensure_ascii=False).encode()
        signature = signed_headers(secret, f"msg_{call['call_id']}", body)
        headers = {"content-type": "application/json", **signature}
        out.append(http_request(host, port, "POST", path, body, headers))
    return out


@dataclass
class LoadResult:
    """What the generator saw: per answered request its latency (s), status and body, in answer order."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)
    errors: int = 0  # connection failures (the request was not answered)

    @property
    def answered(self) -> int:
        return len(self.latencies)


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await self.reader.readexactly(length) if length else b""
            if b"connection: close" in head.lower():
                self.close()
            return status, body
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _send(conn: _Connection, request: bytes, since: float, result: LoadResult) -> None:
    try:
        status, body = await conn.exchange(request)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        result.errors += 1
        return
    result.latencies.append(time.perf_counter() - since)
    result.statuses[status] += 1
    result.bodies.append(body)


async def open_loop(
    host: str, port: int, requests: list[bytes], rate: float, connections: int = 64
) -> LoadResult:
    """Send request i at `start + i / rate` on the first free connection; latency from that due time."""
    result = LoadResult()
    due: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()

    async def worker() -> None:
        conn = _Connection(host, port)
        while (item := await due.get()) is not None:
            await _send(conn, item[0], item[1], result)
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for i, request in enumerate(requests):
        at = start + i / rate
        if (wait := at - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        due.put_nowait((request, at))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    result.seconds = time.perf_counter() - start
    return result


async def closed_loop(
    host: str, port: int, requests: list[bytes], connections: int = 64, seconds: float | None = None
) -> LoadResult:
    """Each connection sends the next request as soon as its previous one is answered, until the
    requests run out or `seconds` pass."""
    result = LoadResult()
    pending = iter(requests)
    start = time.perf_counter()
    stop_at = start + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        conn = _Connection(host, port)
        with contextlib.suppress(StopIteration):
            while time.perf_counter() < stop_at:
                request = next(pending)
                await _send(conn, request, time.perf_counter(), result)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.seconds = time.perf_counter() - start
    return result


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]
