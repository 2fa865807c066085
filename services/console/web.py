"""What every page needs: the console's parts, who is signed in, the language, CSRF checks, rendering."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from services.console.directory import Directory
from services.console.history import History
from services.console.i18n import Lang, channel_name, event_name, hazard_name, translate
from services.console.reads import Reads
from services.console.sessions import COOKIE, LoginThrottle, Session, Sessions
from services.console.settings import ConsoleSettings, Role, User
from services.intake.actions import Actions
from shared.rehydration import reader_for

TEMPLATES = Path(__file__).with_name("templates")
LANG_COOKIE = "hotline_lang"
# Pages hold citizens' complaints: never cached, never framed, scripts and styles from the console only
# (htmx evaluates its trigger filters with Function(), hence 'unsafe-eval'; bar widths are inline styles).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'"
    " 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}
HOME: dict[Role, str] = {"operator": "/operator", "department": "/department", "supervisor": "/supervisor"}


class SignInRequiredError(Exception):
    pass


class RefusedError(Exception):
    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status, self.key = status, key


@dataclass
class Console:
    settings: ConsoleSettings
    redis: Redis
    users: dict[str, User]
    directory: Directory
    actions: Actions

    def __post_init__(self) -> None:
        s = self.settings
        self.sessions = Sessions(self.redis, s.console_session_key, s.console_session_seconds)
        self.throttle = LoginThrottle(self.redis, s.console_login_attempts, s.console_login_window_seconds)
        # Strict: with PostgreSQL out of reach the page of a ticket Redis no longer holds is a 503 (try
        # again), not a 404 that tells the operator the ticket does not exist.
        record = reader_for(s.database_url, strict=True)
        self.reads = Reads(self.redis, s.min_volume, record)
        # With the system of record, search covers every ticket ever recorded, not only Redis's.
        self.history = History(record) if record is not None else None
        self.zone = ZoneInfo(s.timezone)
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
        env.filters["todatetime"] = _datetime
        self.templates = Jinja2Templates(env=env)

    async def session(self, request: Request, *roles: Role) -> Session:
        """The signed-in user, if of one of `roles` (any role when none is given)."""
        session = await self.sessions.load(request.cookies.get(COOKIE))
        if session is None:
            raise SignInRequiredError
        if roles and session.role not in roles:
            raise RefusedError(403, "forbidden")
        return session

    async def form(self, request: Request, session: Session) -> dict[str, str]:
        """The posted form, once its CSRF token is the session's (403 otherwise)."""
        form = await request.form()
        token = str(form.get("csrf") or "")
        if not secrets.compare_digest(token.encode(), session.csrf.encode()):
            raise RefusedError(403, "bad_form")
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = lang_of(request)
        now = datetime.now(UTC)
        context.update(
            request=request,
            session=session,
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            t=lambda key, **v: translate(lang, key, **v),
            event_name=lambda event: event_name(lang, event),
            channel_name=lambda channel: channel_name(lang, channel),
            hazard_name=lambda kind: hazard_name(lang, kind),
            names=self.directory,
            local=lambda at: local_time(at, self.zone),
            left=lambda due: time_left(due, now, lang),
            now=now,
            poll=f"every {self.settings.console_poll_seconds:g}s",
            home=HOME,
            form_key=lambda: secrets.token_urlsafe(12),
            path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        )
        page: HTMLResponse = self.templates.TemplateResponse(request, template, context, status_code=status)
        page.headers.update(SECURITY_HEADERS)
        return page


def _datetime(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def lang_of(request: Request) -> Lang:
    value = request.cookies.get(LANG_COOKIE)
    return "en" if value == "en" else "zh"


def local_time(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%m-%d %H:%M") if at else "-"


def time_left(due: datetime | None, now: datetime, lang: Lang) -> str:
    if due is None:
        return "-"
    delta = due - now
    late = delta < timedelta(0)
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    unit = {k: translate(lang, k) for k in ("days", "hours", "minutes")}
    if days:
        text = f"{days} {unit['days']} {hours} {unit['hours']}"
    elif hours:
        text = f"{hours} {unit['hours']} {mins} {unit['minutes']}"
    else:
        text = f"{mins} {unit['minutes']}"
    return f"{translate(lang, 'overdue')} {text}" if late else text


def safe_next(value: str | None, default: str) -> str:
    """Only a path on this site: an open redirect would let a phishing link bounce off the console."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
