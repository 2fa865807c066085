"""Test helpers: a real local HTTP server that records what it receives, and waiting on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.embedded import free_port


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

    async def handle(self, request: Request) -> Response:
        self.requests.append(Received(request.url.path, dict(request.headers), await request.body()))
        return Response(status_code=self.status(len(self.requests)))


@asynccontextmanager
async def recording_server() -> AsyncIterator[Recorder]:
    """A real HTTP server on a free port, in this event loop; any POST path is recorded."""
    port = free_port()
    recorder = Recorder(url=f"http://127.0.0.1:{port}")
    app = Starlette(routes=[Route("/{path:path}", recorder.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _ready(server), "the recording server to start")
        yield recorder
    finally:
        server.should_exit = True
        await task


async def _ready(server: uvicorn.Server) -> bool:
    return server.started


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, within: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
