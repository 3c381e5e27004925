"""`woobird backfill`: import the orders paid in a date range, with a progress bar and an ETA.

The import itself is `app.booking.backfill`; this command shows its progress events and its report.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from app.booking.backfill import BackfillProgress, BackfillReport, backfill, calls_per_order
from app.cli.support import ConnectionOption, queue, services, settings_or_exit, use_connection
from app.settings import Settings


def backfill_command(
    since: Annotated[datetime, typer.Option("--since", help="first payment moment to import (UTC)")],
    until: Annotated[datetime | None, typer.Option("--until", help="stop before this moment (UTC)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan and print, book nothing")] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="stay until the worker booked them all")
    ] = True,
    connection: ConnectionOption = None,
) -> None:
    """Import the orders paid in a date range; stop with Ctrl-C and run again to resume."""
    use_connection(connection)
    console = Console()
    if until is not None and _utc(until) <= _utc(since):
        console.print("[red]--until must be after --since[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit(complete=True)
    try:
        report = asyncio.run(
            _run_command(
                settings,
                console,
                since=_utc(since),
                until=_utc(until) if until else None,
                dry_run=dry_run,
                wait=wait,
            )
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("stopped; what was queued stays queued — run the same command again to resume")
        raise typer.Exit(130) from None
    print_report(console, report)
    if dry_run and report.progress.queued:
        console.print(report.import_estimate(settings.rate_limit))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _run_command(
    settings: Settings,
    console: Console,
    *,
    since: datetime,
    until: datetime | None,
    dry_run: bool,
    wait: bool,
) -> BackfillReport:
    limit, window = settings.rate_limit
    new = calls_per_order(settings.invoice_kind, new_customer=True)
    returning = calls_per_order(settings.invoice_kind, new_customer=False)
    console.print(
        f"Moneybird allows {limit} requests per {window:g} s; an order takes {new} requests for a new "
        f"customer and {returning} for a returning one, so {3600 / (new * window / limit):.0f} to "
        f"{3600 / (returning * window / limit):.0f} orders an hour."
    )
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("ETA {task.fields[eta]}"),
    )
    async with queue(settings) as redis, services(settings, redis) as built:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("planning" if dry_run else "backfill", total=None, counts="", eta="–")

            def show(progress: BackfillProgress) -> None:
                done = progress.listed if dry_run else progress.listed - progress.waiting
                bar.update(
                    task,
                    total=progress.total or None,
                    completed=max(0, done),
                    counts=_counts(progress, dry_run=dry_run),
                    eta=_duration(progress.eta_seconds),
                )

            return await backfill(built, since=since, until=until, dry_run=dry_run, progress=show, wait=wait)


def _counts(progress: BackfillProgress, *, dry_run: bool) -> str:
    first = (
        f"would book {progress.queued}" if dry_run else f"queued {progress.queued} booked {progress.booked}"
    )
    return f"{first} · skipped {progress.skipped} · refused {progress.refused}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def print_report(console: Console, report: BackfillReport) -> None:
    progress = report.progress
    title = "Backfill (dry run: nothing booked)" if report.dry_run else "Backfill"
    table = Table(title=title)
    table.add_column("", style="bold")
    table.add_column("orders", justify="right")
    if report.dry_run:
        table.add_row("would be booked", str(progress.queued))
        table.add_row("  total of those invoices", f"{report.planned_total:.2f}")
    else:
        table.add_row("queued by this run", str(progress.queued))
        table.add_row("booked", str(progress.booked))
        table.add_row("still waiting for the worker", str(progress.waiting))
    table.add_row("skipped (already booked)", str(progress.skipped))
    table.add_row("refused", str(progress.refused))
    table.add_row("not paid in the range", str(report.not_in_range))
    console.print(table)
    if report.refusals:
        refused = Table(title="Refused")
        refused.add_column("order")
        refused.add_column("reason")
        for refusal in report.refusals:
            refused.add_row(f"#{refusal.order_number}", refusal.reason)
        console.print(refused)
