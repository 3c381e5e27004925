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


def _alembic(url: str) -> Any:
    from alembic.config import Config

    from app.db import alembic_ini

    config = Config(str(alembic_ini()))
    config.attributes["database_url"] = normalise_database_url(url)
    return config


async def _execute(url: str, *statements: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    engine = create_engine(normalise_database_url(url))
    rows: list[tuple[Any, ...]] = []
    try:
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
                if result.returns_rows:
                    rows.extend(tuple(row) for row in result)
    finally:
        await engine.dispose()
    return rows


_NOW = "'2026-01-01 00:00:00+00:00'"


def test_an_upgrade_makes_every_ledger_row_connection_one(database_url: str) -> None:
    """A single-shop ledger from before connections keeps every row, as connection 1's."""
    from alembic import command

    config = _alembic(database_url)
    command.downgrade(config, "0006")
    try:
        asyncio.run(
            _execute(
                database_url,
                "INSERT INTO orders (order_id, order_number, state, date_modified, currency,"
                " invoice_version, attempts, backfilled, created_at, updated_at)"
                f" VALUES (42, '42', 'booked', {_NOW}, 'EUR', 1, 0, false, {_NOW}, {_NOW})",
                "INSERT INTO refunds (refund_id, order_id, state, amount, reason, created_at, updated_at)"
                f" VALUES (7, 42, 'booked', '1.00', '', {_NOW}, {_NOW})",
                "INSERT INTO contacts (email, contact_id, adopted, created_at)"
                f" VALUES ('a@example.com', '99', false, {_NOW})",
                f"INSERT INTO service_state (key, value, updated_at) VALUES ('first_run_at', 'x', {_NOW})",
            )
        )
    finally:
        command.upgrade(config, "head")
    rows = asyncio.run(
        _execute(
            database_url,
            "SELECT connection_id, order_id FROM orders",
            "SELECT connection_id, refund_id, order_id FROM refunds",
            "SELECT contact_book_id, email FROM contacts",
            "SELECT connection_id, key FROM service_state",
        )
    )
    assert rows == [(1, 42), (1, 7, 42), (1, "a@example.com"), (1, "first_run_at")]
