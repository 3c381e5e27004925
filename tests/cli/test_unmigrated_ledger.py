"""A ledger nobody migrated yet: every command that reads it says to run `woobird migrate`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from app.cli import cli
from app.db import create_engine
from app.settings import normalise_database_url
from app.settings_help import SETTING_HELP
from tests.conftest import _postgres_available
from tests.services import TEST_POSTGRES_URL, redis_database

SENTENCE = "the ledger at DATABASE_URL has no tables yet: run woobird migrate"


async def _recreate(server_url: str, name: str) -> None:
    engine = create_engine(normalise_database_url(server_url), pool_size=1, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "woobird.db"
        path.write_bytes(b"")  # exists, holds no tables: a deploy whose release phase never ran
        yield f"sqlite:///{path}"
        return
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {TEST_POSTGRES_URL}")
    url = make_url(TEST_POSTGRES_URL)
    name = f"{url.database}_unmigrated"
    asyncio.run(_recreate(TEST_POSTGRES_URL, name))
    yield url.set(database=name).render_as_string(hide_password=False)


@pytest.mark.parametrize("command", [["status"], ["report", "--month", "2026-11"]])
def test_a_command_on_an_unmigrated_ledger_says_to_migrate(
    command: list[str], unmigrated_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", unmigrated_url)
    monkeypatch.setenv("REDIS_URL", redis_database(14))

    result = CliRunner().invoke(cli, command)

    assert result.exit_code == 2, result.output
    assert SENTENCE in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_migrating_then_reading_works(
    unmigrated_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", unmigrated_url)
    monkeypatch.setenv("REDIS_URL", redis_database(14))
    monkeypatch.setenv("LANGUAGE", "en")

    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    result = CliRunner().invoke(cli, ["status"])

    assert result.exit_code == 0, result.output
    assert "Orders in the ledger" in result.output
