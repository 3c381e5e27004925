"""`woobird connections`: adding, listing, pausing, resuming and removing shops from a terminal;
every refusal says the fix and leaves nothing behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.booking import ledger
from app.cli import cli
from app.connections import VIEWER_TOKEN, viewer_connection, viewer_digest
from app.db import create_engine, session_factory, transaction
from app.queue import connect
from app.schema import Connection, StoredSetting
from app.settings import normalise_database_url
from app.settings_help import SETTING_HELP
from app.tokens import weakness
from tests.conftest import _truncate
from tests.services import redis_database

SECRET_KEY = "5e0c7a1b9d3f4e6a8c2b0d9e7f5a3c1e2d4b6a8c0e9f7d5b3a1c2e4f6a8b0d9e"
SHOP_ENV = """\
WOOCOMMERCE_URL=https://second-shop.nl
WOOCOMMERCE_CONSUMER_KEY=ck_4f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6
WOOCOMMERCE_CONSUMER_SECRET=cs_0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b
WOOCOMMERCE_WEBHOOK_SECRET=wbs_2nd_7Qm4pX9vK2sL8dF3gH6jZ1cV5bN0aS4e
MONEYBIRD_API_TOKEN=mbt_second_9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a
MONEYBIRD_ADMINISTRATION_ID=223456789012345678
"""


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


REDIS_URL = redis_database(15)


async def _flush(url: str) -> None:
    client = connect(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def _env(database_url: str, *, language: str = "en") -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": SECRET_KEY,
        "COLUMNS": "250",
        "LANGUAGE": language,  # the tests that read wording read English; the Dutch ones set nl
    }


def _woobird(database_url: str, *args: str, language: str = "en") -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=_env(database_url, language=language))
    # A table's rules and borders are no words: read the output as its words in order.
    words = result.output.translate({ord(c): " " for c in "│┃┏┓┗┛━─┳┻┡┩╇└┘┴┬├┤┼"})
    return result.exit_code, " ".join(words.split())


def _counts(database_url: str) -> tuple[int, int]:
    """Connections and stored settings in the database."""

    async def count() -> tuple[int, int]:
        engine = create_engine(normalise_database_url(database_url))
        try:
            async with engine.connect() as connection:
                connections = await connection.scalar(select(func.count()).select_from(Connection))
                stored = await connection.scalar(select(func.count()).select_from(StoredSetting))
        finally:
            await engine.dispose()
        return int(connections or 0), int(stored or 0)

    return asyncio.run(count())


def _record_order(database_url: str, *, connection_id: int) -> None:
    async def record() -> None:
        engine = create_engine(normalise_database_url(database_url))
        try:
            async with transaction(session_factory(engine, connection_id=connection_id)) as session:
                moment = datetime(2026, 3, 2, tzinfo=UTC)
                await ledger.record_delivery(
                    session, order_id=1042, order_number="1042", date_modified=moment, date_paid=moment
                )
        finally:
            await engine.dispose()

    asyncio.run(record())


@pytest.mark.usefixtures("no_settings")
def test_a_second_connection_on_sqlite_is_refused_naming_postgresql(sqlite_url: str, tmp_path: Path) -> None:
    shop_env = tmp_path / "shop.env"
    shop_env.write_text(SHOP_ENV, encoding="utf-8")

    code, output = _woobird(sqlite_url, "connections", "add", "second", "--env-file", str(shop_env))

    assert code == 2
    assert "a second connection needs PostgreSQL: set DATABASE_URL" in output
    assert _counts(sqlite_url) == (0, 0)

    code, output = _woobird(
        sqlite_url, "connections", "add", "second", "--env-file", str(shop_env), language="nl"
    )

    assert code == 2
    assert "een tweede koppeling vraagt PostgreSQL: zet DATABASE_URL" in output
    assert _counts(sqlite_url) == (0, 0)


@pytest.mark.usefixtures("no_settings")
def test_connections_are_added_listed_paused_resumed_and_removed(postgres_url: str, tmp_path: Path) -> None:
    asyncio.run(_truncate(postgres_url))
    asyncio.run(_flush(REDIS_URL))
    url = postgres_url
    shop_env = tmp_path / "shop.env"

    # Bad input: each refused with its fix, nothing created.
    shop_env.write_text(SHOP_ENV, encoding="utf-8")
    code, output = _woobird(url, "connections", "add", "Second Shop", "--env-file", str(shop_env))
    assert code == 2
    assert "cannot name a connection: use 1 to 40 lower-case letters" in output
    shop_env.write_text(
        SHOP_ENV.replace("mbt_second_9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a", "your-token"), "utf-8"
    )
    code, output = _woobird(url, "connections", "add", "second", "--env-file", str(shop_env))
    assert code == 2
    assert "MONEYBIRD_API_TOKEN: still a placeholder" in output
    shop_env.write_text(SHOP_ENV + "SYNC_ORDER_STATUSES=processing\n", encoding="utf-8")
    code, output = _woobird(url, "connections", "add", "second", "--env-file", str(shop_env))
    assert code == 2
    assert "sets SYNC_ORDER_STATUSES, which every connection shares" in output
    assert _counts(url) == (0, 0)

    shop_env.write_text(SHOP_ENV, encoding="utf-8")
    code, output = _woobird(url, "connections", "add", "second", "--env-file", str(shop_env))
    assert code == 0, output
    assert "connection second added (id 2)" in output
    assert "/webhooks/woocommerce/second" in output
    assert _counts(url) == (1, 6)
    code, output = _woobird(url, "connections", "add", "second", "--env-file", str(shop_env))
    assert code == 2
    assert "the name 'second' is taken" in output
    assert _counts(url) == (1, 6)

    # The day-to-day commands act on the connection named; the environment's when none is.
    _record_order(url, connection_id=2)
    code, output = _woobird(url, "status", "--connection", "second")
    assert code == 0, output
    assert "queued 1" in output
    assert "queued 0" in _woobird(url, "status")[1]
    code, output = _woobird(url, "status", "--connection", "nowhere")
    assert code == 2
    assert "there is no connection 'nowhere': `woobird connections list` shows them" in output

    code, output = _woobird(url, "connections", "list")
    assert code == 0
    assert "2 second https://second-shop.nl 223456789012345678 booking" in output
    assert "mbt_second" not in output  # no secret is shown

    assert _woobird(url, "connections", "pause", "second")[0] == 0
    assert (
        "second https://second-shop.nl 223456789012345678 paused" in _woobird(url, "connections", "list")[1]
    )
    code, output = _woobird(url, "connections", "resume", "second")
    assert code == 0, output
    assert "resumed; 1 waiting order queued" in output  # the order recorded above

    code, output = _woobird(url, "connections", "remove", "environment")
    assert code == 2
    assert "the environment's connection stays" in output
    code, output = _woobird(url, "connections", "remove", "nowhere")
    assert code == 2
    assert "there is no connection 'nowhere'" in output
    assert _woobird(url, "connections", "remove", "second")[0] == 0
    assert (
        "second https://second-shop.nl 223456789012345678 removed" in _woobird(url, "connections", "list")[1]
    )
    # Removed, its settings (and ledger) stay.
    assert _counts(url) == (1, 6)


@pytest.mark.usefixtures("no_settings")
def test_a_read_only_token_is_shown_once_and_kept_only_as_a_digest(database_url: str) -> None:
    code, output = _woobird(database_url, "connections", "token", "environment")
    assert code == 0, output
    assert "read-only token of connection environment (shown once" in output
    first = output.split()[-1]
    assert weakness(first) is None

    async def kept() -> tuple[list[str], int | None, int | None]:
        engine = create_engine(normalise_database_url(database_url))
        try:
            sessions = session_factory(engine)
            async with sessions() as session:
                values = list(
                    (
                        await session.scalars(
                            select(StoredSetting.value).where(StoredSetting.name == VIEWER_TOKEN)
                        )
                    ).all()
                )
            now = await viewer_connection(sessions, second)
            before = await viewer_connection(sessions, first)
        finally:
            await engine.dispose()
        return values, now.id if now else None, before.id if before else None

    code, output = _woobird(database_url, "connections", "token", "environment", language="nl")
    assert code == 0, output
    assert "token om mee te kijken van koppeling environment" in output
    second = output.split()[-1]
    values, now, before = asyncio.run(kept())
    assert values == [viewer_digest(second)]  # the digest of the newest token, never a token
    assert (now, before) == (1, None)  # the new token signs in; the one it replaced no more

    code, output = _woobird(database_url, "connections", "token", "nowhere")
    assert code == 2
    assert "there is no connection 'nowhere'" in output
