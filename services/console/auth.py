"""Sign-in and sign-out. Failed sign-ins are throttled per user name and per client address; an unknown
user name costs the same scrypt check as a wrong password, so the answer tells nothing about who exists."""

from __future__ import annotations

import logging
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.console.i18n import LANGS, translate
from services.console.passwords import DECOY, verify_password
from services.console.sessions import COOKIE, LOGIN_CSRF_COOKIE
from services.console.web import HOME, LANG_COOKIE, Console, RefusedError, lang_of, safe_next
from services.intake.http import client_ip

log = logging.getLogger("hotline.console")


def routes(console: Console) -> list[Route]:
    secure = console.settings.console_secure_cookies

    def form_page(request: Request, error: str | None = None, status: int = 200) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        page = console.render(
            request,
            "login.html",
            None,
            status=status,
            csrf=token,
            error=error,
            next=safe_next(request.query_params.get("next"), "/"),
        )
        page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure)
        return page

    async def login_page(request: Request) -> Response:
        return form_page(request)

    async def login(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        token = str(form.get("csrf") or "")
        if not cookie or not secrets.compare_digest(token.encode(), cookie.encode()):
            raise RefusedError(403, "bad_form")
        user = str(form.get("user") or "").strip()[:100]
        password = str(form.get("password") or "")[:1000]
        client = client_ip(request)
        who = [f"user:{user}", f"client:{client}"]
        wait = await console.throttle.wait_seconds(who)
        lang = lang_of(request)
        if wait:
            return form_page(request, translate(lang, "too_many_logins", seconds=wait), 429)
        spec = console.users.get(user)
        good = verify_password(password, spec.password if spec else DECOY) and spec is not None
        if not good or spec is None:
            await console.throttle.failed(who)
            log.info("console sign-in refused for %r", user)
            return form_page(request, translate(lang, "bad_login"), 401)
        await console.throttle.succeeded(user)
        session = await console.sessions.start(user, spec)
        log.info("console sign-in: %s (%s)", user, spec.role)
        target = safe_next(str(form.get("next") or ""), HOME[spec.role])
        if target == "/":
            target = HOME[spec.role]
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            COOKIE,
            console.sessions.cookie_value(session),
            max_age=console.settings.console_session_seconds,
            httponly=True,
            samesite="lax",
            secure=secure,
        )
        answer.delete_cookie(LOGIN_CSRF_COOKIE)
        return answer

    async def logout(request: Request) -> Response:
        session = await console.session(request)
        await console.form(request, session)
        await console.sessions.end(session)
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    async def home(request: Request) -> Response:
        session = await console.session(request)
        return RedirectResponse(HOME[session.role], status_code=303)

    async def language(request: Request) -> Response:
        lang = request.path_params["lang"]
        if lang not in LANGS:
            raise RefusedError(404, "not_found")
        answer = RedirectResponse(safe_next(request.query_params.get("next"), "/"), status_code=303)
        answer.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure)
        return answer

    return [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{lang}", language),
    ]
