"""Running a service process: logging, then uvicorn serving the app on the service's own port."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
from redis.asyncio import Redis
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared.bus import redis_ready
from shared.rehydration import close_readers
from shared.settings import CommonSettings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def serve(app: Any, settings: CommonSettings) -> None:
    """Serve until SIGTERM/SIGINT; uvicorn then runs the app's shutdown, which drains the broker."""
    configure_logging(settings.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        # uvicorn would take X-Forwarded-For from any loopback peer; intake and the console trust only
        # their configured proxies (`proxy_middleware`), and no other service is reached through a proxy.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout) + 5,
    )


def proxy_middleware(trusted_proxies: list[str]) -> list[Middleware]:
    """`request.client` becomes the client a trusted proxy names in X-Forwarded-For; with no proxy
    configured the header is ignored, so a client cannot pose as another to dodge per-client limits."""
    if not trusted_proxies:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies)]


def health_routes(redis: Redis) -> list[Route]:
    """`/livez` (the process answers; Redis is deliberately not checked, or an outage restarts every pod)
    and `/readyz` (Redis reachable) of a Starlette service."""

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if not await redis_ready(redis):
            return PlainTextResponse("redis unavailable", status_code=503)
        return PlainTextResponse("ready")

    return [Route("/livez", livez), Route("/readyz", readyz)]


def closing_lifespan(
    redis: Redis,
    log: logging.Logger,
    dev_credentials: list[str],
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A Starlette service's lifespan: warn while development credentials are in use, close the record's
    pools and Redis at the end."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if dev_credentials:
            log.warning(
                "development credentials in use (set them for production): %s", ", ".join(dev_credentials)
            )
        yield
        await close_readers()
        await redis.aclose()

    return lifespan
