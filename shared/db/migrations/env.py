"""Alembic's environment: online migrations only, through SQLAlchemy's async engine on asyncpg."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.urls import sqlalchemy_url

# Every migrator takes this lock first, so two pods (or `hotline up` beside the init Job) never apply the
# same migration twice at once.
LOCK_KEY = 0x486F746C696E65  # "Hotline"


def _run(conn: Connection) -> None:
    # A session lock, released when the connection closes (after the migrations' commit).
    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
    conn.commit()
    context.configure(connection=conn, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(sqlalchemy_url(context.config.attributes["database_url"]))
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_online())
