"""Running a service process: logging, then uvicorn serving the app on the service's own port."""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn

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
        # uvicorn would take X-Forwarded-For from any loopback peer; intake trusts only its configured
        # proxies (HOTLINE_TRUSTED_PROXIES), and no other service is reached through a proxy.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout) + 5,
    )
