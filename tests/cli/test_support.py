"""Bad settings end every command with the same sentence, naming each setting: never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.sandbox.samples import sample_carts
from app.settings_help import SETTING_HELP

SENTENCE = "woobird's settings are not usable yet:"
FIX = "Run woobird setup or edit .env (see .env.example), then woobird check."


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


@pytest.mark.usefixtures("no_settings")
@pytest.mark.parametrize(
    "command",
    [
        ["products"],
        ["products", "--dry-run"],
        ["backfill", "--since", "2026-01-01"],
        ["backfill", "--since", "2026-01-01", "--dry-run"],
        ["sync", "1041"],
        ["sync", "1041", "--dry-run"],
    ],
)
def test_a_command_that_needs_the_accounts_names_every_missing_setting(command: list[str]) -> None:
    result = CliRunner().invoke(cli, command, env={"COLUMNS": "250"})

    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2
    assert SENTENCE in result.output
    assert FIX in result.output
    for name in ("WOOCOMMERCE_URL", "MONEYBIRD_API_TOKEN", "MONEYBIRD_ADMINISTRATION_ID", "ADMIN_TOKEN"):
        assert f"{name}: missing" in result.output


@pytest.mark.usefixtures("no_settings")
@pytest.mark.parametrize(
    "command", [["status"], ["report", "--month", "2026-11"], ["retry", "--failed"], ["plan", "order.json"]]
)
def test_a_malformed_setting_is_named_by_every_command(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "order.json").write_text(json.dumps(sample_carts(datetime.now(UTC))[0]), encoding="utf-8")
    monkeypatch.setenv("RECONCILE_INTERVAL_SECONDS", "often")

    result = CliRunner().invoke(cli, command, env={"COLUMNS": "250"})

    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2
    assert SENTENCE in result.output
    assert "RECONCILE_INTERVAL_SECONDS:" in result.output


@pytest.mark.usefixtures("no_settings")
def test_woobird_products_without_configuration_prints_the_sentence(tmp_path: Path) -> None:
    """The installed entry point, in a folder without .env and an environment without settings."""
    woobird = Path(sys.executable).parent / "woobird"
    env = {name: value for name, value in os.environ.items() if name not in SETTING_HELP} | {"COLUMNS": "250"}

    result = subprocess.run(
        [str(woobird), "products"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert SENTENCE in result.stderr
    assert "MONEYBIRD_API_TOKEN: missing" in result.stderr
    assert FIX in result.stderr
