"""`woobird`: set up, check, run and look after the connection from a terminal.

woobird run                 web + worker (the sandbox demo when no accounts are configured)
woobird setup / check       from an empty .env to a verified connection
woobird webhook install     point the shop's order.updated webhook at woobird
woobird status              orders per state, queue, last reconciliation, failures
woobird sync ID [--dry-run] book one order now, or show its invoice plan
woobird retry ID | --failed queue failed orders again
woobird report --month M    shop totals against booked invoices per VAT rate
woobird verify --month M    booked invoices still in Moneybird, at their totals, paid
woobird plan ORDER.json     the invoice woobird would make of an order file
woobird backfill --since D  book the orders paid since a date
woobird products            copy the shop's products with a SKU to Moneybird
woobird migrate             bring the ledger's tables up to date (Procfile: release)
woobird connections …       add, list, pause, resume and remove shops (many in one woobird)

This package only registers commands: each group lives in its own module (`setup`, `ops`, `plan`,
`backfill`, `products`, `run`, `verify`), `support` gives them the ledger, the queue and the services and
explains bad settings, and `demo` is the one way into the sandbox. The work itself is done by the
modules they call.
"""

from __future__ import annotations

import typer

from app.cli import backfill, connections, day_to_day, plan, products, run, setup, verify

cli = typer.Typer(
    name="woobird",
    help="Books every completed, paid WooCommerce order into Moneybird as a paid invoice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
webhook_cli = typer.Typer(help="The shop's webhook that tells woobird about orders.", no_args_is_help=True)
cli.add_typer(webhook_cli, name="webhook")
connections_cli = typer.Typer(
    help="Many shops in one woobird: each a connection of its own.", no_args_is_help=True
)
cli.add_typer(connections_cli, name="connections")

cli.command("check")(setup.check_command)
cli.command("setup")(setup.setup_command)
webhook_cli.command("install")(setup.webhook_install_command)
cli.command("status")(day_to_day.status_command)
cli.command("sync")(day_to_day.sync_command)
cli.command("retry")(day_to_day.retry_command)
cli.command("report")(day_to_day.report_command)
cli.command("verify")(verify.verify_command)
cli.command("plan")(plan.plan_command)
cli.command("backfill")(backfill.backfill_command)
cli.command("products")(products.products_command)
cli.command("migrate")(run.migrate_command)
cli.command("run")(run.run_command)
connections_cli.command("add")(connections.add_command)
connections_cli.command("list")(connections.list_command)
connections_cli.command("pause")(connections.pause_command)
connections_cli.command("resume")(connections.resume_command)
connections_cli.command("remove")(connections.remove_command)
connections_cli.command("token")(connections.token_command)


def main() -> None:
    cli()
