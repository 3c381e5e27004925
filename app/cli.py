"""`woobird`: set up, check, run and look after the connection from a terminal.

woobird run                 web + worker (the sandbox demo when no accounts are configured)
woobird setup / check       from an empty .env to a verified connection
woobird webhook install     point the shop's order.updated webhook at woobird
woobird status              orders per state, queue, last reconciliation, failures
woobird sync ID [--dry-run] book one order now, or show its invoice plan
woobird retry ID | --failed queue failed orders again
woobird report --month M    shop totals against booked invoices per VAT rate
woobird migrate             bring the ledger's tables up to date (Procfile: release)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from dotenv import dotenv_values

from app import cli_ops, cli_setup
from app.cli_support import console, err_console, fail, settings_or_exit
from app.invoicing.preview import plan_command
from app.preflight import redis_problem
from app.settings import REPO_ROOT, ConfigurationError, load_settings, normalise_database_url
from app.sync.backfill import backfill_command
from app.sync.products import products_command

cli = typer.Typer(
    name="woobird",
    help="Books every completed, paid WooCommerce order into Moneybird as a paid invoice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
webhook_cli = typer.Typer(help="The shop's webhook that tells woobird about orders.", no_args_is_help=True)
cli.add_typer(webhook_cli, name="webhook")

# The two settings that mean "real accounts are configured": without both, `run` starts the sandbox.
ACCOUNT_SETTINGS = ("WOOCOMMERCE_URL", "MONEYBIRD_API_TOKEN")

cli.command("check")(cli_setup.check_command)
cli.command("setup")(cli_setup.setup_command)
webhook_cli.command("install")(cli_setup.webhook_install_command)
cli.command("status")(cli_ops.status_command)
cli.command("sync")(cli_ops.sync_command)
cli.command("retry")(cli_ops.retry_command)
cli.command("report")(cli_ops.report_command)


cli.command("plan")(plan_command)
cli.command("backfill")(backfill_command)
cli.command("products")(products_command)


@cli.command("migrate")
def migrate_command() -> None:
    """Create or update the ledger's tables in DATABASE_URL (the Procfile's release step)."""
    settings = settings_or_exit()
    migrate(settings.database_url)
    console.print(f"[green]✓[/] the ledger is up to date ({_where(settings.database_url)})")


def migrate(database_url: str) -> None:
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
    fail("alembic.ini not found: run `woobird migrate` from the folder that holds it (the repository)")


def _where(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        return database_url.split("///", 1)[-1]
    return database_url.split("@")[-1]


@cli.command("run")
def run_command(
    env_file: Path = typer.Option(Path(".env"), help="The .env file to read the accounts from"),
) -> None:
    """Start web + worker; with no accounts configured, the sandbox demo instead."""
    configured = configured_accounts(env_file)
    if not configured:
        from app.sandbox.demo import run_sandbox

        raise typer.Exit(run_sandbox())
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
    raise typer.Exit(start_processes(env, names=("web", "worker"), cwd=env_file.resolve().parent))


def configured_accounts(env_file: Path) -> list[str]:
    """Which of the account settings are set, in the environment or the .env file."""
    from_file = dotenv_values(env_file) if env_file.exists() else {}
    return [name for name in ACCOUNT_SETTINGS if (os.environ.get(name) or from_file.get(name) or "").strip()]


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for web and worker: ours, plus the venv's bin on PATH (uvicorn, arq)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def procfile_commands() -> dict[str, str]:
    from honcho.environ import parse_procfile

    procfile = parse_procfile((REPO_ROOT / "Procfile").read_text(encoding="utf-8"))
    return {name: str(command) for name, command in procfile.processes.items()}


def start_processes(
    env: dict[str, str], *, names: tuple[str, ...], cwd: Path, extra: dict[str, str] | None = None
) -> int:
    """Run the Procfile's processes (and any extra commands) under honcho until one stops.

    `cwd` decides which .env file the processes read: the one `run` looked at, or (sandbox) none.
    """
    from honcho.manager import Manager

    commands = procfile_commands()
    manager = Manager()
    for name in names:
        manager.add_process(name, commands[name], env=env, cwd=str(cwd))
    for name, command in (extra or {}).items():
        manager.add_process(name, command, env=env, cwd=str(cwd))
    manager.loop()
    return int(manager.returncode or 0)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
