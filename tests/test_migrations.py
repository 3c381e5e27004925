"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from app import schema  # noqa: F401  (registers the tables on Base.metadata)
from app.db import Base, create_engine
from app.settings import normalise_database_url


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, Base.metadata))


async def _compare(url: str) -> list[Any]:
    engine = create_engine(normalise_database_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


def test_migrated_database_matches_the_models(database_url: str) -> None:
    assert asyncio.run(_compare(database_url)) == []
