"""Applying the schema's migrations (`hotline db upgrade`) and naming the version a database is at."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.urls import sqlalchemy_url

MIGRATIONS = Path(__file__).with_name("migrations")


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Kept out of the ini parser's interpolation: a password may hold '%'.
    cfg.attributes["database_url"] = url
    return cfg


def head() -> str:
    """The newest migration's revision."""
    revision = ScriptDirectory.from_config(config("postgresql://")).get_current_head()
    assert revision is not None
    return revision


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`. Safe to run again (and from several pods at once: the
    migrations take an advisory lock), so the init Job and `hotline up` both run it.

    In a thread of its own: the migration environment runs its own event loop, and a caller may be
    inside one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, config(url), revision).result()


async def current(url: str) -> str | None:
    """The revision the database is at (None: no migration applied yet)."""
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()
