"""`woobird verify --month YYYY-MM`: the verification of a month's booked invoices, now.

It is the worker's verification (app.booking.verify) run in the terminal, under the same shared rate
limit and recording the same findings; a passing failure (Moneybird away, its rate limit reached)
is tried again by the job layer's rule (app.retry) a few times before the command gives up.
"""

from __future__ import annotations

import asyncio
import time

import typer
from rich.table import Table

from app.booking.verify import MonthVerification, month_days, verify_month
from app.cli.support import console, fail, queue, run, services, settings_or_exit
from app.money import money
from app.retry import TryAgainLater, retry_delay
from app.settings import Settings

# Tries before the command gives up on a Moneybird that is away or busy.
VERIFY_TRIES = 3


def verify_command(
    month: str = typer.Option(..., "--month", help="The month, YYYY-MM, whose booked invoices to read back"),
) -> None:
    """Check that every invoice booked for a month is still in Moneybird, at its total, and paid."""
    try:
        month_days(month)
    except ValueError as exc:
        fail(str(exc), code=2)
    settings = settings_or_exit(complete=True)
    result = run(_verify(settings, month.strip()))
    render_verification(result)
    if result.drifts:
        raise typer.Exit(1)


async def _verify(settings: Settings, month: str) -> MonthVerification:
    async with queue(settings) as redis, services(settings, redis) as built:
        for job_try in range(1, VERIFY_TRIES + 1):
            try:
                return await verify_month(built, month)
            except TryAgainLater as exc:
                if job_try == VERIFY_TRIES:
                    fail(f"Moneybird could not be read after {job_try} tries: {exc}")
                delay = retry_delay(job_try=job_try, error=exc, now=time.time())
                console.print(f"Moneybird asks to wait ({exc}); trying again in {delay:.0f} s")
                await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def render_verification(result: MonthVerification) -> None:
    console.print(
        f"[bold]Verified {result.month}[/bold]: {result.invoices} invoice(s) and "
        f"{result.credit_invoices} credit invoice(s) booked, {money(result.booked_total)} in all, "
        f"against Moneybird's invoices dated {result.start}..{result.end} "
        f"({result.requests} request(s))"
    )
    if not result.checked:
        console.print("Nothing was booked for this month.")
        return
    if not result.drifts:
        console.print(f"[green]All {result.checked} are in Moneybird as booked: there, same total, paid.[/]")
    else:
        table = Table(title=f"Changed in Moneybird ({len(result.drifts)})", show_edge=False)
        for column in ("order", "document", "what", "booked", "Moneybird", "state", ""):
            table.add_column(column, justify="right" if column in {"booked", "Moneybird"} else "left")
        for drift in result.drifts:
            booked, held = drift.booked, drift.held
            table.add_row(
                booked.order_number,
                booked.number or booked.invoice_id,
                drift.kind.value.removeprefix("invoice_"),
                money(booked.total),
                "gone" if held is None else money(held.total),
                "—" if held is None else held.state,
                "new" if drift.news else "known",
            )
        console.print(table)
        console.print(f"{result.well} of {result.checked} are as booked.")
    if result.resolved:
        console.print(f"{result.resolved} earlier finding(s) resolved: those invoices are as booked again.")
