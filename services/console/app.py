"""Wiring of the console: users, sessions, the shared actions, pages, static files, health and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from services.console import auth, pages
from services.console.directory import Directory
from services.console.passwords import hash_password
from services.console.settings import (
    DEV_OPERATOR,
    DEV_SUPERVISOR,
    ConsoleSettings,
    User,
    dev_department_password,
)
from services.console.web import Console, RefusedError, SignInRequiredError, to_sign_in
from services.intake.actions import Actions
from shared.bus import redis_client
from shared.service import closing_lifespan, health_routes, proxy_middleware

log = logging.getLogger("hotline.console")
STATIC = Path(__file__).with_name("static")


def dev_users(departments: list[str]) -> dict[str, User]:
    """`make run`'s users: operator, supervisor, and one per department named by its id; the passwords
    are public (`hotline-dev-<user>`), so production refuses them (HOTLINE_REQUIRE_PRODUCTION_CREDENTIALS)."""
    # The cheapest scrypt cost allowed: a dozen hashes at start, for passwords everyone knows anyway.
    users = {
        DEV_OPERATOR[0]: User(role="operator", password=hash_password(DEV_OPERATOR[1], log2_n=10)),
        DEV_SUPERVISOR[0]: User(role="supervisor", password=hash_password(DEV_SUPERVISOR[1], log2_n=10)),
    }
    for d in departments:
        password = hash_password(dev_department_password(d), log2_n=10)
        users[d] = User(role="department", department=d, password=password)
    return users


def create_app(settings: ConsoleSettings | None = None) -> Starlette:
    settings = settings or ConsoleSettings()
    registry = CollectorRegistry()
    redis = redis_client(settings.redis_url)
    directory = Directory(settings)
    users = (
        settings.console_users
        if settings.console_users is not None
        else dev_users(list(directory.departments))
    )
    actions_total = Counter(
        "hotline_console_actions_total",
        "Ticket actions taken in the console",
        ["kind", "outcome"],
        registry=registry,
    )
    latency = Histogram(
        "hotline_console_request_duration_seconds",
        "Time to answer a console page or part",
        ["route"],
        buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
        registry=registry,
    )
    console = Console(
        settings=settings,
        redis=redis,
        users=users,
        directory=directory,
        actions=Actions(
            redis,
            stream_maxlen=settings.stream_maxlen,
            categories=list(directory.categories),
            departments=list(directory.departments),
            count=lambda kind, outcome: actions_total.labels(kind, outcome).inc(),
        ),
    )

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        return to_sign_in(request)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RefusedError)
        session = await console.sessions.load(request.cookies.get("hotline_session"))
        return console.render(request, "error.html", session, status=exc.status, key=exc.key, code=exc.status)

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("storage unavailable: %s", type(exc).__name__)
        return PlainTextResponse(
            "storage unavailable, retry in a moment", status_code=503, headers={"Retry-After": "5"}
        )

    def timed(route: Route) -> Route:
        endpoint: Callable[[Request], Awaitable[Response]] = route.endpoint

        async def measured(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return await endpoint(request)
            finally:
                latency.labels(route.path).observe(time.perf_counter() - started)

        latency.labels(route.path)  # every page's series exists from the start, at zero
        return Route(route.path, measured, methods=list(route.methods or ()), name=route.name)

    routes: list[BaseRoute] = [timed(r) for r in [*auth.routes(console), *pages.routes(console)]]
    routes += [
        *health_routes(redis),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        Mount("/metrics", make_asgi_app(registry)),
    ]
    app = Starlette(
        routes=routes,
        lifespan=closing_lifespan(redis, log, settings.dev_credentials_in_use()),
        # Behind the ingress every peer is the ingress: the sign-in throttle counts the client it names.
        middleware=proxy_middleware(settings.trusted_proxies),
        exception_handlers={
            SignInRequiredError: sign_in_first,
            RefusedError: refused,
            RedisError: unavailable,
            # Redis, or the record read back for a ticket that left Redis (asyncpg's connect raises
            # OSError, or TimeoutError, one of them, when the server is away).
            OSError: unavailable,
            asyncpg.PostgresError: unavailable,
        },
    )
    app.state.console = console
    return app
