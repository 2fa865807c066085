"""Intake's answers to a path no route serves (404) or a method it does not take (405)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from services.intake import open311
from services.intake.http import HttpError, problem


async def not_found(request: Request, exc: Exception) -> Response:
    return _refused(request, HttpError(404, "not_found", "no such route"))


async def not_allowed(request: Request, exc: Exception) -> Response:
    """RFC 9110: a 405 names every method the resource takes. Starlette's own header names only the
    route it tried, and one path may be several routes (Open311's GET and POST requests)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    allow = {"Allow": ", ".join(sorted(methods))}
    return _refused(request, HttpError(405, "method_not_allowed", "method not allowed", headers=allow))


def _refused(request: Request, error: HttpError) -> Response:
    """Open311 clients parse the spec's error array in the URL's format; everyone else the JSON problem."""
    if request.url.path.startswith(open311.BASE + "/"):
        return open311.render_error(request, error)
    return problem(request, error)
