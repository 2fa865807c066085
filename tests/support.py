"""Test helpers: a real local HTTP server that records what it receives, and waiting on conditions."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tools.embedded import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """A department's or gateway's system: records every request; answers `status(n)` for the n-th."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: Callable[[int], int] = lambda n: 200
    delay: Callable[[int], float] = lambda n: 0.0
    # (webhook-id, status) of every answer given, in order: what the sender saw
    answers: list[tuple[str, int]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.requests.append(Received(request.url.path, dict(request.headers), await request.body()))
        n = len(self.requests)
        await asyncio.sleep(self.delay(n))
        status = self.status(n)
        self.answers.append((request.headers.get("webhook-id", ""), status))
        return Response(status_code=status)

    def ids_per_ticket(self) -> dict[str, set[str]]:
        """The webhook-ids each ticket was sent under (deliveries carry the ticket's event as JSON)."""
        ids: dict[str, set[str]] = {}
        for request in self.requests:
            ids.setdefault(json.loads(request.body)["ticket_id"], set()).add(request.headers["webhook-id"])
        return ids

    def delivered(self) -> list[str]:
        """webhook-ids answered 2xx, in order (a repeat means the same event was delivered twice)."""
        return [webhook_id for webhook_id, status in self.answers if 200 <= status < 300]


@asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[None]:
    """Serve `app` with uvicorn on 127.0.0.1:`port` in this event loop, from started to shut down."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await wait_for(started, f"a server on port {port} to start")
        yield
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def recording_server() -> AsyncIterator[Recorder]:
    """A real HTTP server on a free port, in this event loop; any POST path is recorded."""
    port = free_port()
    recorder = Recorder(url=f"http://127.0.0.1:{port}")
    async with serving(Starlette(routes=[Route("/{path:path}", recorder.handle, methods=["POST"])]), port):
        yield recorder


async def wait_for(check: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    """Poll `check` (plain or async) until it returns something truthy; fail naming `what` after `within`
    seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def ticket_matches_row(fields: dict[Any, Any], row: Any) -> list[str]:
    """How a ticket's hash in Redis differs from its row in PostgreSQL's `tickets` (empty: the same).

    Each field is compared by the value it means, read back from its column's Python type: a time as an
    instant, a number as a number, a flag as a bool, JSON as data; fields without a column are in `extra`.
    """
    from datetime import datetime

    text = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    columns = dict(row)
    extra = json.loads(columns.pop("extra") or "{}")
    columns.pop("recorded_at", None)
    problems = []
    for name, value in text.items():
        if name not in columns:
            if extra.get(name) != value:
                problems.append(f"{name}: {value!r} in Redis, {extra.get(name)!r} in extra")
            continue
        stored = columns[name]
        if isinstance(stored, datetime):
            same = datetime.fromisoformat(value) == stored
        elif isinstance(stored, bool):
            same = stored == (value.lower() in ("1", "true", "t", "yes"))
        elif isinstance(stored, int | float):
            same = float(value) == float(stored)
        elif name in ("attributes", "eval_rounds", "contacts"):  # jsonb
            same = json.loads(value) == json.loads(stored)
        else:
            same = value == stored
        if not same:
            problems.append(f"{name}: {value!r} in Redis, {stored!r} in PostgreSQL")
    for name, stored in columns.items():
        if name not in text and name != "ticket_id" and stored is not None:
            problems.append(f"{name}: absent in Redis, {stored!r} in PostgreSQL")
    return problems
