"""One DATABASE_URL, spelled for each client: asyncpg takes `postgresql://`, SQLAlchemy (which drives
Alembic) needs the dialect and driver in the scheme."""

from __future__ import annotations

_SCHEMES = ("postgresql+asyncpg://", "postgresql://", "postgres://")


def _rest(url: str) -> str:
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return url[len(scheme) :]
    raise ValueError("DATABASE_URL must start with postgresql:// (or postgres://)")


def asyncpg_dsn(url: str) -> str:
    return "postgresql://" + _rest(url)


def sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + _rest(url)
