"""The console app in-process over httpx (no lifespan runs: the caller's Redis client is closed here),
and signing in through its form, as a browser does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from shared.rehydration import close_readers

PEER = "203.0.113.7"  # the address every request comes from


@asynccontextmanager
async def console_client(redis_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ConsoleSettings(redis_url=redis_url, **settings))
    transport = httpx.ASGITransport(app=app, client=(PEER, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield client
    await app.state.console.redis.aclose()
    await close_readers()


async def sign_in(
    client: httpx.AsyncClient, user: str, password: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Post the sign-in form (the development password unless `password`); answers the form's answer."""
    await client.get("/login")
    form = {
        "user": user,
        "password": password or f"hotline-dev-{user}",
        "csrf": client.cookies.get("hotline_login_csrf") or "",
        "next": "/",
    }
    return await client.post("/login", data=form, headers=headers or {})
