"""Shared fixtures: real Redis, real SQL (SQLite and PostgreSQL), settings, the web app.

PostgreSQL is used when it answers on TEST_POSTGRES_URL (default: the local `test` database);
CI always has it. On a laptop without it those tests are skipped with a message saying so.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory
from app.main import build_state, create_app
from app.queue import connect
from app.settings import REPO_ROOT, Settings, load_settings, normalise_database_url
from tests.services import TEST_POSTGRES_URL, redis_database

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", redis_database(5))
# Strong, as woobird requires of every secret that guards an endpoint (app/tokens.py).
WEBHOOK_SECRET = "test-webhook-0R0fiU_5c8SZfL6DQRRsvKCPVXCwEUNj"
ADMIN_TOKEN = "test-admin-9ZtmHFi8_ZnDiw83Yb_vq4dhmXUZ_cA5"
TABLES = (
    "findings",
    "rebookings",
    "ledger_events",
    "refunds",
    "contacts",
    "orders",
    "service_state",
    "settings_changes",
    "connection_settings",
    "connections",
)


def migrate(url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = normalise_database_url(url)
    command.upgrade(config, "head")


def _postgres_available() -> bool:
    async def probe() -> None:
        engine = create_engine(normalise_database_url(TEST_POSTGRES_URL), pool_size=1)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {TEST_POSTGRES_URL}; CI must test against it")
        pytest.skip(
            f"PostgreSQL not reachable at {TEST_POSTGRES_URL} (set TEST_POSTGRES_URL to test against it)"
        )
    asyncio.run(_fresh_schema(TEST_POSTGRES_URL))
    migrate(TEST_POSTGRES_URL)
    return TEST_POSTGRES_URL


async def _fresh_schema(url: str) -> None:
    """Every run migrates an empty database, so the migrations themselves are tested too."""
    engine = create_engine(normalise_database_url(url), pool_size=1)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database: a fresh SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        path = tmp_path / "woobird.db"
        path.write_bytes(sqlite_template.read_bytes())
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate(url))
    yield url


async def _truncate(url: str) -> None:
    engine = create_engine(normalise_database_url(url), pool_size=1)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "woobird.db"
    path.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    client = connect(TEST_REDIS_URL)
    try:
        await client.ping()
    except Exception:
        pytest.fail(
            f"Redis is not reachable at {TEST_REDIS_URL}: start it with `redis-server --daemonize yes`"
        )
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "woocommerce_url": "https://shop.test",
        "woocommerce_consumer_key": "ck_" + "a1" * 20,
        "woocommerce_consumer_secret": "cs_" + "b2" * 20,
        "woocommerce_webhook_secret": WEBHOOK_SECRET,
        "moneybird_api_token": "mb-test-token-7f3e9a",
        "moneybird_administration_id": "123456789012345678",
        "moneybird_api_url": "https://moneybird.test/api/v2",
        "admin_token": ADMIN_TOKEN,
        "redis_url": TEST_REDIS_URL,
        "sync_since": "2020-01-01T00:00:00Z",
        "log_format": "console",
        # The tests that check wording read English; their Dutch counterparts ask for nl.
        "language": "en",
    }
    values.update(overrides)
    settings = load_settings(_env_file=None, **values)
    return settings.require_complete()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def web(settings: Settings, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    """The real FastAPI app, lifespan included, behind an in-process httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            yield client


__all__ = ["build_state", "make_settings", "migrate"]


@pytest.fixture
async def harness(database_url: str, redis: ArqRedis) -> AsyncIterator[Any]:
    """Fake shop + fake Moneybird + the real web app and worker; see tests/harness.py."""
    from tests.harness import open_harness

    async with open_harness(database_url=database_url, redis=redis) as wired:
        yield wired
