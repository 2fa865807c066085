"""Wiring of intake, the only HTTP ingress: each channel's routes, health, metrics, the OpenAPI document."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from services.intake import departments, open311, operators, supervisors, surveys, telephony, twilio
from services.intake.auth_throttle import AuthThrottle, AuthThrottleMiddleware
from services.intake.credentials import Credentials
from services.intake.deps import Deps, load_department_names
from services.intake.http import IntakeMetrics
from services.intake.openapi import document
from services.intake.refusals import not_allowed, not_found
from services.intake.settings import IntakeSettings
from shared.bus import redis_client
from shared.service import closing_lifespan, health_routes, proxy_middleware
from shared.taxonomy import load_taxonomy

__all__ = ["IntakeSettings", "create_app"]

log = logging.getLogger("hotline.intake")
CHANNELS = (telephony, twilio, surveys, departments, operators, open311, supervisors)


def create_app(settings: IntakeSettings | None = None) -> Starlette:
    settings = settings or IntakeSettings()
    registry = CollectorRegistry()
    redis = redis_client(settings.redis_url)
    deps = Deps(
        settings=settings,
        redis=redis,
        metrics=IntakeMetrics(registry),
        taxonomy=load_taxonomy(settings.taxonomy_path),
        department_names=load_department_names(settings.routing_path),
        operator_tokens=Credentials(settings.operator_tokens),
        open311_keys=Credentials(settings.open311_api_keys),
        supervisor_tokens=Credentials(settings.supervisor_tokens),
    )
    spec = document([op for channel in CHANNELS for op in channel.OPERATIONS], "Hotline intake", "1")

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    routes: list[BaseRoute] = [route for channel in CHANNELS for route in channel.routes(deps)]
    routes += [
        Route("/openapi.json", openapi),
        *health_routes(redis),
        Mount("/metrics", make_asgi_app(registry)),
    ]
    # uvicorn's own proxy handling is off (shared/service.py): X-Forwarded-For counts only from the
    # configured proxies, whatever address the service is reached from.
    # The proxy's rewrite comes first, so the throttle sees the client, not the ingress.
    middleware = proxy_middleware(settings.trusted_proxies)
    throttle = AuthThrottle(
        redis, settings.auth_failure_limit, settings.auth_failure_window_seconds, registry
    )
    middleware.append(Middleware(AuthThrottleMiddleware, throttle=throttle))
    app = Starlette(
        routes=routes,
        lifespan=closing_lifespan(redis, log, settings.dev_credentials_in_use()),
        middleware=middleware,
        exception_handlers={404: not_found, 405: not_allowed},
    )
    app.state.redis = redis
    app.state.settings = settings
    app.state.deps = deps
    return app
