"""The SQL connection: one async engine per process, SQLite by default, PostgreSQL in production;
and the migrations that bring its tables up to date."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, Text, TypeDecorator, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

from app.constants import ENVIRONMENT_CONNECTION_ID
from app.redaction import scrub
from app.settings import REPO_ROOT, normalise_database_url


class Base(DeclarativeBase):
    pass


# Where a session keeps the connection it is bound to, and its administration's contact book.
SESSION_CONNECTION = "connection_id"
SESSION_CONTACT_BOOK = "contact_book_id"


class MoneyText(TypeDecorator[Decimal]):
    """Money stored as its exact decimal text: SQLite's NUMERIC would round-trip through float."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be Decimal, got {type(value).__name__}")
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


class ScrubbedText(TypeDecorator[str]):
    """Text that quotes the outside world (error messages, the ledger's history): bounded and free
    of credentials when written, and scrubbed again when read, so rows written before a redaction
    rule existed are shown under it too."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else scrub(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else scrub(value)


def _tune_sqlite(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    # WAL lets the web process write while the worker reads; NORMAL sync is durable across
    # process crashes (only an OS crash can lose the last commits) and keeps intake fast.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for a normalised `DATABASE_URL` (see app.settings.normalise_database_url)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", 5)
    return create_async_engine(url, **kwargs)


def create_sync_sqlite_engine(url: str) -> Engine:
    """A plain (threaded) engine on the same SQLite file, for work done in one thread hop."""
    engine = create_sync_engine(url.replace("sqlite+aiosqlite", "sqlite", 1))
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def session_factory(
    engine: AsyncEngine, *, connection_id: int | None = None, contact_book_id: int | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to one connection's ledger (app.connection_scope holds them to it); connection
    1's by default, and its contact book is its own unless another's is named."""
    connection = connection_id or ENVIRONMENT_CONNECTION_ID
    info = {SESSION_CONNECTION: connection, SESSION_CONTACT_BOOK: contact_book_id or connection}
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose work is committed on success and rolled back on any error."""
    async with sessions() as session, session.begin():
        yield session


def migrate(database_url: str) -> None:
    """Create or update the ledger's tables (Alembic's `upgrade head`)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(alembic_ini()))
    config.attributes["database_url"] = normalise_database_url(database_url)
    command.upgrade(config, "head")


def alembic_ini() -> Path:
    """The checkout's alembic.ini; in an image built with `pip install .` the package lives in
    site-packages, so the file is found in the working directory (the Dockerfile's /app)."""
    for candidate in (REPO_ROOT / "alembic.ini", Path.cwd() / "alembic.ini"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        "alembic.ini not found: run `woobird migrate` from the folder that holds it (the repository)"
    )


def is_missing_table(exc: DBAPIError) -> bool:
    """A database not migrated yet (the release phase has not run `woobird migrate`): SQLite and
    PostgreSQL each say so in their own words."""
    said = str(exc.orig).lower()
    return "no such table" in said or "does not exist" in said or "undefinedtable" in said
