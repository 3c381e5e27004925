"""`woobird run` and `woobird migrate`: start web + worker (or the sandbox demo), update the ledger.

What runs is `app.processes` (the Procfile under honcho) and `app.db.migrate`; these commands
decide which, with which settings, and say what is wrong before anything starts.
"""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli import demo
from app.cli.support import console, err_console, fail, settings_or_exit
from app.db import migrate
from app.preflight import redis_problem
from app.processes import process_env, start_processes
from app.settings import ACCOUNT_SETTINGS, ConfigurationError, configured_accounts, load_settings


def migrate_command() -> None:
    """Create or update the ledger's tables in DATABASE_URL (the Procfile's release step)."""
    settings = settings_or_exit()
    try:
        migrate(settings.database_url)
    except FileNotFoundError as exc:
        fail(str(exc))
    console.print(f"[green]✓[/] the ledger is up to date ({_where(settings.database_url)})")


def _where(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        return database_url.split("///", 1)[-1]
    return database_url.split("@")[-1]


def run_command(
    env_file: Path = typer.Option(Path(".env"), help="The .env file to read the accounts from"),
) -> None:
    """Start web + worker; with no accounts configured, the sandbox demo instead."""
    configured = configured_accounts(env_file)
    try:
        if not configured:
            raise typer.Exit(demo.run_sandbox())
        status = _run_for_real(env_file, configured=configured)
    except FileNotFoundError as exc:
        fail(str(exc))
    raise typer.Exit(status)


def _run_for_real(env_file: Path, *, configured: list[str]) -> int:
    try:
        settings = load_settings(_env_file=env_file).require_complete()
    except ConfigurationError as exc:
        verb = "is" if len(configured) == 1 else "are"
        err_console.print(
            f"[bold red]✗[/] {', '.join(configured)} {verb} set, so woobird would talk to real accounts, "
            "but these settings are not usable yet:"
        )
        for name, why in exc.problems.items():
            err_console.print(f"  [bold]{name}[/]: {why}")
        err_console.print(
            "  Fill them in (`woobird setup` helps), or remove "
            f"{' and '.join(ACCOUNT_SETTINGS)} to run the sandbox demo. Sandbox and real are never mixed."
        )
        raise typer.Exit(2) from None
    problem = redis_problem(settings.redis_url)
    if problem:
        fail(problem)
    migrate(settings.database_url)
    env = process_env({"WOOBIRD_SANDBOX": "false"})
    return start_processes(env, names=("web", "worker"), cwd=env_file.resolve().parent)
