"""`woobird check` on the two services it needs besides the APIs: Redis and the migrated ledger."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.db import migrate
from app.settings_help import SETTING_HELP
from tests.services import redis_database


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.usefixtures("no_settings")
def test_check_names_redis_that_does_not_answer_and_a_ledger_never_migrated(tmp_path: Path) -> None:
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.db'}",
        "COLUMNS": "250",
    }

    result = CliRunner().invoke(cli, ["check"], env=env | {"LANGUAGE": "en"})

    assert result.exit_code == 1
    assert "✗ REDIS_URL: Redis does not answer" in result.output
    assert "✗ DATABASE_URL: the ledger is not usable" in result.output
    assert "run `woobird migrate`" in result.output

    dutch = CliRunner().invoke(cli, ["check"], env=env | {"LANGUAGE": "nl"})

    assert dutch.exit_code == 1
    assert "✗ REDIS_URL: Redis antwoordt niet" in dutch.output
    assert "✗ DATABASE_URL: het logboek is niet bruikbaar (OperationalError); voer `woobird migrate` uit" in (
        dutch.output
    )
    assert "✗ WOOCOMMERCE_URL: ontbreekt — het basisadres van de winkel" in dutch.output
    assert "problemen op te lossen voordat woobird elke bestelling kan boeken." in dutch.output
    assert "does not answer" not in dutch.output


@pytest.mark.usefixtures("no_settings")
def test_check_finds_redis_and_the_migrated_ledger(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(database_url)
    env = {"REDIS_URL": redis_database(14), "DATABASE_URL": database_url, "COLUMNS": "250", "LANGUAGE": "en"}

    result = CliRunner().invoke(cli, ["check"], env=env)

    assert "✓ Redis: answers;" in result.output
    assert "✓ database: reachable and migrated" in result.output
    assert "✗ REDIS_URL" not in result.output
    assert "✗ DATABASE_URL" not in result.output
    # The accounts are missing, so check still fails, naming them.
    assert result.exit_code == 1
    assert "✗ MONEYBIRD_API_TOKEN" in result.output
