"""The day-to-day commands: `status`, `sync`, `retry` and `report`.

They read the same ledger and queue as the web and worker processes, and book or queue orders
through the same code paths, so what a person does by hand is recorded like everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import typer
from arq import Retry
from arq.connections import ArqRedis
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import ledger
from app.booking.findings import open_findings
from app.booking.intake import OpenInvoiceRule, accept_order
from app.booking.order_retry import RetryRefused, retry_order
from app.booking.verify import last_verification
from app.cli.demo import ledger_settings
from app.cli.plan import render_plan
from app.cli.support import (
    ConnectionOption,
    chosen_connection,
    console,
    fail,
    ledger_sessions,
    queue,
    run,
    services,
    settings_or_exit,
    styled,
    use_connection,
)
from app.clients import moneybird_client, shop_client
from app.constants import QUEUE_NAME
from app.db import transaction
from app.delivery_lag import ADVICE, recent_lags
from app.i18n import Language, shown, translate, when, word
from app.invoicing.plan import InvoicePlan, PlanRefused, plan_invoice
from app.invoicing.reference import AdministrationReference
from app.money import money
from app.moneybird.errors import MoneybirdError
from app.moneybird.reference import load_reference
from app.plan_options import plan_options
from app.report import MonthReport, month_bounds, monthly_report, render_report
from app.schema import Finding, OrderRecord, OrderState
from app.settings import Settings
from app.woocommerce.errors import WooCommerceError, WooCommerceNotFound
from app.woocommerce.models import Order

RECENT_FAILURES = 10
RECENT_FINDINGS = 20


# ── status ───────────────────────────────────────────────────────────────────────────────────


def status_command(connection: ConnectionOption = None) -> None:
    """Orders per state, the last reconciliation, the queue, what to look at after booking, failures."""
    use_connection(connection)
    settings = ledger_settings()
    run(_status(settings))


async def _status(settings: Settings) -> None:
    language = settings.language

    def _(message: str, /, **params: object) -> str:
        return escape(translate(language, message, **params))

    async with ledger_sessions(settings) as sessions, sessions() as session:
        counts = await ledger.counts_by_state(session)
        last_success = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
        last_error = await ledger.get_state(session, ledger.RECONCILE_LAST_ERROR)
        failures = await ledger.recent_orders(session, limit=RECENT_FAILURES, state=OrderState.FAILED.value)
        after_booking = await open_findings(session, limit=RECENT_FINDINGS)
        verified = await last_verification(session, interval_hours=settings.verify_interval_hours)
    if settings.woobird_sandbox:
        console.print("[bold magenta]SANDBOX[/] —", _("simulated shop and Moneybird, nothing real is booked"))
    table = Table(_("state"), _("orders"), title=_("Orders in the ledger"))
    for state in OrderState:
        table.add_row(word(state.value, language), str(counts.get(state.value, 0)))
    console.print(table)
    never = _("never")
    console.print(
        _("Last reconciliation: %(when)s", when=_ago(last_success, language) if last_success else never)
    )
    if last_error:
        console.print(styled("yellow", _("Last reconciliation error:")), escape(last_error))
    if not verified.on:
        console.print(_("Last verification: off (VERIFY_INTERVAL_HOURS=0)"))
    else:
        finished = _moment_ago(verified.finished, language) if verified.finished else never
        console.print(_("Last verification: %(when)s", when=finished))
    if verified.error:
        console.print(styled("yellow", _("Last verification error:")), escape(verified.error))
    try:
        async with queue(settings) as redis:
            depth = await redis.zcard(QUEUE_NAME)
            lags = await recent_lags(redis, connection_id=chosen_connection())
        console.print(_("Queue: %(depth)s job(s) waiting", depth=depth))
        console.print(_("Webhook delivery lag: %(lag)s", lag=shown(lags.describe(), language)))
        if lags.slow:
            console.print(styled("yellow", _("Webhooks arrive late:")), _(ADVICE))
    except Exception as exc:
        console.print(
            styled("bold red", _("Queue: Redis does not answer")), escape(f"({type(exc).__name__}: {exc})")
        )
    _print_findings(after_booking, language=language)
    if not failures:
        console.print(styled("green", _("No failed orders.")))
        return
    table = Table(
        _("order"),
        _("since"),
        _("kind"),
        _("reason"),
        title=_("Failed orders (latest %(count)s)", count=RECENT_FAILURES),
    )
    for record in failures:
        table.add_row(
            record.order_number or str(record.order_id),
            when(record.updated_at, language),
            word(record.failure_kind, language) if record.failure_kind else "",
            escape(shown(record.error or "", language)),
        )
    console.print(table)
    console.print(
        translate(language, "Fix the reason, then [bold]woobird retry --failed[/] (or retry ORDER_ID).")
    )


def _print_findings(findings: Sequence[Finding], *, language: Language) -> None:
    if not findings:
        console.print(styled("green", escape(translate(language, "After booking: nothing to look at."))))
        return
    table = Table(
        translate(language, "since"),
        translate(language, "what"),
        translate(language, "order"),
        translate(language, "woobird noticed"),
        title=translate(language, "After booking (%(count)s open)", count=len(findings)),
    )
    for finding in findings:
        table.add_row(
            when(finding.detected_at, language),
            word(finding.kind, language),
            str(finding.order_id or ""),
            escape(shown(finding.message, language)),
        )
    console.print(table)


def _ago(stamp: str, language: Language) -> str:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return _moment_ago(moment, language)


def _moment_ago(moment: datetime, language: Language) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    minutes = int((datetime.now(UTC) - moment).total_seconds() // 60)
    return translate(language, "%(when)s (%(minutes)s min ago)", when=when(moment, language), minutes=minutes)


# ── sync ─────────────────────────────────────────────────────────────────────────────────────


def sync_command(
    order_id: int = typer.Argument(..., help="The WooCommerce order id"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the invoice plan; book nothing"),
    connection: ConnectionOption = None,
) -> None:
    """Book one order now (or, with --dry-run, show the invoice woobird would create)."""
    use_connection(connection)
    settings = settings_or_exit(complete=True)
    if dry_run:
        order, reference = run(_order_and_reference(settings, order_id))
        try:
            plan: InvoicePlan | PlanRefused = plan_invoice(
                order, reference=reference, options=plan_options(settings, connection_id=chosen_connection())
            )
        except PlanRefused as refused:
            plan = refused
        render_plan(plan, order, console, reference=reference)
        console.print("[dim]Dry run: nothing was booked.[/]")
        if isinstance(plan, PlanRefused):
            raise typer.Exit(1)
        return
    state = run(_book_now(settings, order_id))
    if state not in (OrderState.BOOKED, OrderState.AWAITING_PAYMENT):
        raise typer.Exit(1)


async def _order_and_reference(settings: Settings, order_id: int) -> tuple[Order, AdministrationReference]:
    try:
        async with shop_client(settings) as shop:
            order = await shop.get_order(order_id)
        async with moneybird_client(settings) as moneybird:
            return order, await load_reference(moneybird)
    except WooCommerceNotFound:
        fail(f"the shop has no order {order_id}")
    except (WooCommerceError, MoneybirdError) as exc:
        fail(str(exc))


async def _book_now(settings: Settings, order_id: int) -> str:
    from app.booking.orders import book_order_job

    async with queue(settings) as redis, services(settings, redis) as built:
        ctx = {"services": built, "redis": redis, "job_try": 1}
        try:
            state: str = await book_order_job(ctx, order_id, "woobird sync")
        except Retry:
            fail(f"order {order_id} could not be booked right now (the shop or Moneybird is busy); try again")
    async with ledger_sessions(settings) as sessions, sessions() as session:
        record = await ledger.get_order(session, order_id)
    _print_outcome(order_id, state, record)
    return state


def _print_outcome(order_id: int, state: str, record: OrderRecord | None) -> None:
    if state in (OrderState.BOOKED, OrderState.AWAITING_PAYMENT) and record is not None:
        number = record.invoice_number or record.invoice_id
        total = "" if record.invoice_total is None else f", {money(record.invoice_total)}"
        if state == OrderState.BOOKED:
            console.print(f"[green]✓[/] order {order_id} is booked: invoice {number}{total}")
        else:
            console.print(f"[green]✓[/] order {order_id} is booked unpaid: open invoice {number}{total}")
    elif record is not None and record.error:
        console.print(f"[bold red]✗[/] order {order_id} is {state}: {record.error}")
    else:
        console.print(f"order {order_id} is {state}")


# ── retry ────────────────────────────────────────────────────────────────────────────────────


def retry_command(
    order_id: int | None = typer.Argument(None, help="One order to queue again"),
    failed: bool = typer.Option(False, "--failed", help="Queue every failed order again"),
    connection: ConnectionOption = None,
) -> None:
    """Queue failed orders again, after the reason they failed was fixed."""
    use_connection(connection)
    if (order_id is None) == (not failed):
        fail("name one ORDER_ID or pass --failed")
    settings = settings_or_exit()
    queued = run(_retry(settings, order_id=order_id))
    console.print(f"[green]✓[/] {queued} order(s) queued again" if queued else "Nothing to queue.")


async def _retry(settings: Settings, *, order_id: int | None) -> int:
    async with ledger_sessions(settings) as sessions, queue(settings) as redis:
        stores = _Stores(settings=settings, sessions=sessions, redis=redis)
        if order_id is None:
            async with sessions() as session:
                failed = await ledger.recent_orders(session, limit=10_000, state=OrderState.FAILED.value)
            order_ids = [record.order_id for record in failed]
        else:
            async with sessions() as session:
                known = await ledger.get_order(session, order_id)
            if known is None:
                return await _retry_unknown(settings, order_id=order_id, sessions=sessions, redis=redis)
            order_ids = [order_id]
        count = 0
        for each in order_ids:
            try:
                await retry_order(stores, order_id=each, event="queued again by hand", reason="retry")
            except RetryRefused as refused:
                console.print(f"order {each}: {refused}")
                continue
            console.print(f"order {each}: queued again")
            count += 1
        return count


@dataclass
class _Stores:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis


async def _retry_unknown(
    settings: Settings, *, order_id: int, sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> int:
    """An order woobird never heard of: fetch it and take it in like a webhook delivery."""
    try:
        async with shop_client(settings) as shop:
            order = await shop.get_order(order_id)
    except WooCommerceNotFound:
        fail(f"the shop has no order {order_id}")
    except WooCommerceError as exc:
        fail(str(exc))
    since = settings.sync_since
    if since is None:
        async with transaction(sessions) as session:
            since = await ledger.first_run_at(session)
    result = await accept_order(
        order,
        sessions=sessions,
        redis=redis,
        statuses=settings.sync_order_statuses,
        since=since,
        reason="retry",
        open_invoices=OpenInvoiceRule.from_settings(settings),
    )
    console.print(f"order {order_id}: {result.outcome} — {result.reason}")
    return 1 if result.outcome == "queued" else 0


# ── report ───────────────────────────────────────────────────────────────────────────────────


def report_command(
    month: str = typer.Option(..., "--month", help="The month, YYYY-MM (a VAT return's period)"),
    connection: ConnectionOption = None,
) -> None:
    """Shop totals against booked invoices per VAT rate for a month, with every difference listed."""
    use_connection(connection)
    try:
        month_bounds(month)
    except ValueError as exc:
        fail(str(exc), code=2)
    settings = ledger_settings()

    async def build() -> MonthReport:
        async with ledger_sessions(settings) as sessions:
            return await monthly_report(sessions, month=month, tax_rates=settings.moneybird_tax_rates)

    render_report(run(build()), console, language=settings.language)
