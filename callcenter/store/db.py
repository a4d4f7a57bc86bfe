"""Database engines (SQLite through aiosqlite, PostgreSQL through asyncpg) and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from callcenter.config import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str, *, pool_size: int = 10, timeout: float = 5.0) -> AsyncEngine:
    """An engine configured for this project: WAL and foreign keys on SQLite,
    bounded connect and command timeouts on PostgreSQL."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": timeout}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["pool_pre_ping"] = True
        kwargs["pool_timeout"] = timeout
        kwargs["connect_args"] = {"timeout": timeout, "command_timeout": timeout * 2}
    if parsed.get_backend_name() == "sqlite":
        # The driver's own transaction handling is turned off so that every
        # transaction begins IMMEDIATE (below).
        kwargs["connect_args"]["isolation_level"] = None
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(conn: Connection) -> None:
    # A transaction that reads and then writes cannot wait for another writer
    # in WAL mode: SQLite answers "database is locked" at once. Taking the
    # write lock at BEGIN makes it wait (busy_timeout) instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def engine_for(settings: DatabaseSettings) -> AsyncEngine:
    """The engine the settings describe (URL, pool size, timeouts)."""
    return create_engine(
        settings.url, pool_size=settings.pool_size, timeout=settings.timeout_seconds
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the spool drains; NORMAL sync is safe in WAL
    # mode because the spool, not SQLite, holds the not-yet-applied records.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision``."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
