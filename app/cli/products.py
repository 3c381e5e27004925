"""`woobird products`: copy the shop's products with a SKU to Moneybird, and say what happened.

The transfer itself is `app.booking.products`; this command runs it and prints its report.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.booking.products import TransferReport, transfer_products
from app.cli.support import queue, run, services, settings_or_exit
from app.settings import Settings


def products_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be created, create nothing")
    ] = False,
) -> None:
    """Copy the shop's products with a SKU to Moneybird, adopting those that already exist."""
    console = Console()
    settings = settings_or_exit(complete=True)
    report = run(_transfer(settings, dry_run=dry_run))
    table = Table(title="Product transfer" + (" (dry run: nothing created)" if dry_run else ""))
    table.add_column("", style="bold")
    table.add_column("products", justify="right")
    table.add_row("would be created" if dry_run else "created", str(len(report.created)))
    table.add_row("adopted (already in Moneybird)", str(len(report.adopted)))
    table.add_row("without SKU (left out)", str(report.without_sku))
    table.add_row("refused", str(len(report.refused)))
    console.print(table)
    for sku, reason in report.refused:
        console.print(f"[yellow]{sku}[/yellow]: {reason}")


async def _transfer(settings: Settings, *, dry_run: bool) -> TransferReport:
    async with queue(settings) as redis, services(settings, redis) as built:
        return await transfer_products(built, dry_run=dry_run)
