"""Each role's pages and the live parts htmx refreshes (`*.part`), the ticket page and the actions.

Actions call `services.intake.actions`, the same code as intake's API routes, so a click publishes the
same event a department's system or an operator's API call would: nothing bypasses the loop."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.console.charts import district_map, forecast_svg
from services.console.reads import month_of, row_of
from services.console.search import LIMIT, Query, exact, search
from services.console.sessions import Session
from services.console.similar import suspected
from services.console.web import Console, RefusedError, lang_of, safe_next
from services.evaluation.rates import check_bucket
from services.insight.problem_store import load_problem, request_action
from services.intake.http import HttpError
from shared.store import Ticket

log = logging.getLogger("hotline.console")


def routes(console: Console) -> list[Route]:
    departments = list(console.directory.departments)

    async def operator(request: Request) -> Response:
        session = await console.session(request, "operator")
        return console.render(request, "operator.html", session, **await review(session))

    async def review(session: Session) -> dict[str, Any]:
        rows, total = await console.reads.review_queue(datetime.now(UTC))
        return {"rows": rows, "total": total, "suspects": await suspected(console.redis, rows)}

    async def operator_part(request: Request) -> Response:
        session = await console.session(request, "operator")
        return console.render(request, "_review.html", session, **await review(session))

    async def department(request: Request) -> Response:
        session = await console.session(request, "department")
        return console.render(request, "department.html", session, **await inbox(session))

    async def inbox(session: Session) -> dict[str, Any]:
        assert session.department is not None
        rows, total, overdue = await console.reads.inbox(session.department, datetime.now(UTC))
        return {"rows": rows, "total": total, "overdue": overdue}

    async def department_part(request: Request) -> Response:
        session = await console.session(request, "department")
        return console.render(request, "_inbox.html", session, **await inbox(session))

    async def supervisor(request: Request) -> Response:
        session = await console.session(request, "supervisor")
        return console.render(request, "supervisor.html", session, **await overview(request))

    async def overview(request: Request) -> dict[str, Any]:
        now = datetime.now(UTC)
        try:
            month = check_bucket("month", request.query_params.get("month") or month_of(now, console.zone))
        except ValueError:
            raise RefusedError(400, "bad_month") from None
        board = await console.reads.board(month)
        hotspots = await console.reads.hotspots()
        open_counts = await console.reads.open_by_district(departments)
        per_district = Counter(h["district"] for h in hotspots if h["district"])
        insight = await console.reads.insight(month)
        lang = lang_of(request)
        forecast = insight["forecast"].get("all") or {}
        return {
            "month": month,
            "board": board,
            "hotspots": hotspots[:20],
            "insight": insight,
            "forecast": forecast,
            "forecast_svg": forecast_svg(forecast),
            "map": district_map(
                console.directory.districts, open_counts, per_district, lambda d: d.name(lang)
            ),
            "open_total": sum(open_counts.values()),
            "supervision": await console.reads.supervision(),
            "problems": await console.reads.problems(),
            "plan": await console.reads.plan(),
        }

    async def supervisor_part(request: Request) -> Response:
        session = await console.session(request, "supervisor")
        return console.render(request, "_overview.html", session, **await overview(request))

    async def counts_part(request: Request) -> Response:
        session = await console.session(request)
        counts = await console.reads.counts(departments)
        return console.render(request, "_counts.html", session, counts=counts)

    async def ticket_page(request: Request) -> Response:
        session = await console.session(request)
        ticket, history = await console.reads.ticket(request.path_params["ticket_id"])
        if ticket is None:
            raise RefusedError(404, "not_found")
        allowed(session, ticket)
        return console.render(
            request,
            "ticket.html",
            session,
            ticket=ticket,
            row=row_of(ticket, datetime.now(UTC)),
            history=history,
            msg=request.query_params.get("msg"),
            err=request.query_params.get("err"),
        )

    async def search_page(request: Request) -> Response:
        session = await console.session(request, "operator", "supervisor")
        query = Query.of(request.query_params, console.zone)
        found = await exact(console.reads, query) if query.given else None
        if found is None and query.given and console.history is not None:
            try:
                found = await console.history.search(query, *query.window(datetime.now(UTC)))
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("search: the record is unavailable (%s), searching Redis", type(exc).__name__)
        if query.given and found is None:
            found = await search(console.reads, query)
        return console.render(request, "search.html", session, query=query, found=found, limit=LIMIT)

    async def act(request: Request) -> Response:
        session = await console.session(request, "operator", "department")
        form = await console.form(request, session)
        ticket_id, action = request.path_params["ticket_id"], request.path_params["action"]
        back = safe_next(form.get("next"), f"/tickets/{ticket_id}")
        key = form.get("key") or None
        try:
            if session.role == "department" and action in ("accept", "reject", "resolve"):
                assert session.department is not None
                await console.actions.department_action(
                    session.department, ticket_id, action, form.get("note"), key
                )
            elif session.role == "operator" and action in ("confirm", "category"):
                category = form.get("category", "")
                if action == "confirm":
                    ticket = await console.actions.store.get(ticket_id)
                    category = ticket.category or "" if ticket else ""
                await console.actions.correct_category(session.user, ticket_id, category, key)
            elif session.role == "operator" and action == "route":
                await console.actions.reroute(
                    session.user, ticket_id, form.get("department", ""), form.get("reason") or None, key
                )
            else:
                raise RefusedError(403, "forbidden")
        except HttpError as exc:
            return RedirectResponse(_with(back, err=f"{exc.status} {exc.message}"), status_code=303)
        return RedirectResponse(_with(back, msg="done"), status_code=303)

    async def act_on_problem(request: Request) -> Response:
        """A supervisor's proactive work order: the same code as intake's POST .../act."""
        session = await console.session(request, "supervisor")
        form = await console.form(request, session)
        back = safe_next(form.get("next"), "/supervisor")
        problem = await load_problem(console.redis, request.path_params["problem_id"])
        if problem is None:
            raise RefusedError(404, "not_found")
        if not problem.open_for_action:
            return RedirectResponse(_with(back, err=f"409 {problem.status}"), status_code=303)
        maxlen = console.settings.stream_maxlen
        action, _ = await request_action(
            console.redis, problem, f"supervisor:{session.user}", datetime.now(UTC), maxlen
        )
        return RedirectResponse(_with(back, msg=f"work order {action.ticket_id}"), status_code=303)

    return [
        Route("/supervisor/problems/{problem_id}/act", act_on_problem, methods=["POST"]),
        Route("/operator", operator),
        Route("/operator/queue.part", operator_part),
        Route("/department", department),
        Route("/department/inbox.part", department_part),
        Route("/supervisor", supervisor),
        Route("/supervisor/overview.part", supervisor_part),
        Route("/counts.part", counts_part),
        Route("/search", search_page),
        Route("/tickets/{ticket_id}", ticket_page),
        Route("/tickets/{ticket_id}/{action}", act, methods=["POST"]),
    ]


def allowed(session: Session, ticket: Ticket) -> None:
    """A department sees only the tickets assigned to it now (403 for any other, even by URL)."""
    if session.role == "department" and ticket.department != session.department:
        raise RefusedError(403, "forbidden")


def _with(path: str, **params: str) -> str:
    base = path.split("?", 1)[0]
    return f"{base}?{urlencode(params)}"
