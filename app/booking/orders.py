"""Booking one order: re-read it from the shop, qualify it, plan it, find its contact, book it.

A booked order seen again is compared with what its invoice booked (app.booking.changes) and, with
ORDER_CHANGES=rebook, rebooked (app.booking.rebook).

    qualify   still paid and in a status that counts, and not from before SYNC_SINCE
    plan      the invoice, cent-exact (app.invoicing.plan)
    contact   one per e-mail, kept true, replaced when Moneybird lost it (app.booking.contacts)
    invoice   the booking walk (app.booking.walk): adopt or create, send, pay what is open

Before each call that makes something in Moneybird (a contact, the invoice, its payment) the ledger
holds that call's intent, written in one transaction with the steps done since the last one (the
booking began, the contact found, the invoice created and sent: app.booking.walk holds them), so a
crash anywhere resumes from the last intent and adopts what Moneybird already made instead of
making it twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from app import schema
from app.alerts import alert_order_failed
from app.booking import ledger, open_invoices, rebook
from app.booking.changes import booked_columns, compare_with_booked, version_of
from app.booking.contacts import ensure_contact, replace_contact
from app.booking.findings import resolve
from app.booking.intake import OpenInvoiceRule, Qualification, qualify
from app.booking.products import catalogue_in
from app.booking.refunds import queue_refunds
from app.booking.shop_notes import queue_shop_note
from app.booking.walk import (
    INVOICE_STEPS,
    BookingFailed,
    Invoice,
    LedgerProgress,
    Position,
    failing_on_refusal,
    number_of,
    walk,
    write_down,
)
from app.constants import ORDER_LOCK_PREFIX
from app.db import transaction
from app.i18n import N_, Message
from app.invoicing.contact import PlanContact
from app.invoicing.plan import InvoicePlan, PlanRefused, plan_invoice
from app.jobs import backlog_slot, exclusively, retry_transient, waits_its_turn
from app.metrics import BOOKING_SECONDS, JOBS
from app.money import money
from app.moneybird.errors import MoneybirdRejected
from app.moneybird.lanes import Lane
from app.retry import TryAgainLater
from app.runtime import Services, services_of
from app.schema import FindingKind, OrderRecord, OrderState, OrderStep
from app.woocommerce.errors import WooCommerceError, WooCommerceNotFound, WooCommerceTransient
from app.woocommerce.models import Order

log = structlog.get_logger("woobird.booking")

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


async def _gave_up(services: Services, args: tuple[Any, ...], message: str) -> None:
    await _fail(services, int(args[0]), BookingFailed(message, kind="exhausted"))


@retry_transient("order", give_up=_gave_up)
async def book_order_job(ctx: dict[str, Any], order_id: int, reason: str = "webhook") -> str:
    services = services_of(ctx)
    async with exclusively(services, f"{ORDER_LOCK_PREFIX}{order_id}"):
        before = await _record_if_any(services, order_id)
        # An order the backfill queued books in the backlog lane: after every fresh request of its
        # Moneybird limit, and deferred rather than held in a worker while it waits its turn
        # (app.moneybird.ratelimit, app.jobs).
        lane = Lane.BACKLOG if before is not None and before.backfilled else Lane.FRESH
        # A backlog order takes one of the worker's backlog slots first (app.jobs.BacklogSlots):
        # put off before anything, it has nothing to give back.
        with backlog_slot(ctx, lane):
            try:
                # A backfilled order starts only with room at the limit to finish it: put off
                # half-way, its next run would first read back what it had done. Asked before
                # anything else, so that a run put off costs no request to the shop either.
                await services.moneybird.take_turn()
                return await book_order(services, order_id=order_id, reason=reason, record=before)
            except TryAgainLater as exc:
                if before is not None and waits_its_turn(exc):
                    await _not_an_attempt(services, order_id, attempts=before.attempts)
                raise
            finally:
                await services.moneybird.end_turn()


async def _record_if_any(services: Services, order_id: int) -> OrderRecord | None:
    async with services.sessions() as session:
        return await ledger.get_order(session, order_id)


async def _not_an_attempt(services: Services, order_id: int, *, attempts: int) -> None:
    """A run the limiter put off before it sent anything it did not write down: not an attempt.
    Counted, its next run would take itself for a retry after a crash and look its invoice up first
    (app.booking.walk), spending a Moneybird request on every turn the backlog waits."""
    async with transaction(services.sessions) as session:
        await ledger.update_order(session, order_id, attempts=attempts)


async def book_order(
    services: Services, *, order_id: int, reason: str, record: OrderRecord | None = None
) -> str:
    """Book one order; returns the ledger state it ends in. `record`: the order's ledger row as the
    caller just read it under the order's lock, not read again (no other try moves it meanwhile)."""
    started = time.perf_counter()
    # The shop's order and what the ledger knows are read at once: one wait instead of two.
    shop_read, ledger_read = await asyncio.gather(
        services.shop.get_order(order_id),
        _ledger_view(services, order_id, record=record),
        return_exceptions=True,
    )
    known, rebooking, catalogue = _result(ledger_read)
    try:
        order = _result(shop_read)
    except WooCommerceNotFound:
        await _finish(
            services, order_id, state=OrderState.SKIPPED, message=N_("the order no longer exists in the shop")
        )
        return OrderState.SKIPPED
    except WooCommerceTransient:
        raise
    except WooCommerceError as exc:
        # The shop refused the key, or sent something that is not an order: a person must look.
        await _fail(
            services,
            order_id,
            BookingFailed(Message("the shop's order could not be read: %(error)s", error=exc), kind="shop"),
        )
        JOBS.labels(kind="order", outcome="failed", connection=str(services.connection_id)).inc()
        return OrderState.FAILED
    record = known if known is not None else await _record_for(services, order)
    since = EARLIEST if record.backfilled else await _since(services)
    verdict = qualify(
        order,
        statuses=services.settings.sync_order_statuses,
        since=since,
        open_invoices=OpenInvoiceRule.from_settings(services.settings),
    )
    paid_later = record.state == OrderState.AWAITING_PAYMENT
    if paid_later or record.state == OrderState.CREDITED:
        stays = await _seen_with_open_invoice(services, record, order)
        if stays is not None:
            return stays
        verdict = Qualification(True, "paid in the shop: its open invoice gets the payment")
    if record.state == OrderState.BOOKED and rebooking is None:
        rebooking = await _seen_booked(services, record, order, verdict=verdict)
        if rebooking is None:
            await queue_refunds(services, order=order)
            return OrderState.BOOKED
    if rebooking is not None:
        try:
            await rebook.credit_old_invoice(services, rebooking, order=order)
        except BookingFailed as exc:
            await rebook.failed(services, order_id, message=str(exc))
            old = rebooking.old_invoice_number or rebooking.old_invoice_id
            await _fail(
                services, order_id, BookingFailed(f"rebooking stopped crediting {old}: {exc}", kind=exc.kind)
            )
            JOBS.labels(kind="order", outcome="failed", connection=str(services.connection_id)).inc()
            return OrderState.FAILED
        record = await _load(services, order_id)
    if not verdict.ok and record.step is None:
        state = OrderState.BEFORE_SINCE if verdict.before_since else OrderState.SKIPPED
        await _finish(services, order_id, state=state, message=verdict.reason)
        return state
    try:
        plan = await _plan(services, order, catalogue=catalogue, unpaid=verdict.open_invoice)
        plan = rebook.versioned(plan, record, today=rebook.today(services))
        # Put off by the limiter with nothing left undone (`_not_an_attempt`): its booking goes on.
        goes_on = rebooking is None and record.state == OrderState.BOOKING and record.attempts == 0
        entry = InvoiceProgress(services, order_id=order_id, record=record)
        _start(entry, record, order=order, plan=plan, reason=reason, goes_on=goes_on)
        invoice = await _book(services, entry, record=record, plan=plan, open_invoice=verdict.open_invoice)
    except BookingFailed as exc:
        if not (paid_later and await _paid_meanwhile(services, order_id, exc)):
            await _fail(services, order_id, exc)
            JOBS.labels(kind="order", outcome="failed", connection=str(services.connection_id)).inc()
            return OrderState.FAILED
        invoice = await services.moneybird.get_sales_invoice(record.invoice_id or "")
        await write_down(
            services,
            order_id=order_id,
            event="payment",
            message="the invoice was paid in Moneybird meanwhile: no payment of woobird's",
            payment_id=invoice.payments[-1].id,
        )
    await _booked(services, order, plan=plan, invoice=invoice, open_invoice=verdict.open_invoice)
    elapsed = time.perf_counter() - started
    BOOKING_SECONDS.observe(elapsed)
    JOBS.labels(
        kind="order",
        outcome="open_invoice" if verdict.open_invoice else "booked",
        connection=str(services.connection_id),
    ).inc()
    log.info(
        "order booked as open invoice" if verdict.open_invoice else "order booked",
        order_id=order_id,
        number=plan.order_number,
        invoice=number_of(invoice),
        invoice_id=invoice.id,
        total=money(invoice.total_price_incl_tax),
        seconds=round(elapsed, 2),
    )
    if verdict.open_invoice:
        return OrderState.AWAITING_PAYMENT
    await queue_refunds(services, order=order)
    return OrderState.BOOKED


async def _seen_with_open_invoice(services: Services, record: OrderRecord, order: Order) -> str | None:
    """An order with an open invoice (or one credited) seen again: the state it stays in, or None when
    it was paid in the shop and is to be booked as paid."""
    if record.state == OrderState.CREDITED:
        log.info(
            "order not booked", order_id=order.id, state=record.state, reason="its open invoice was credited"
        )
        return OrderState.CREDITED
    try:
        return await open_invoices.seen_again(services, record, order)
    except BookingFailed as exc:
        await _fail(services, order.id, exc, keep_state=True)
        return record.state


async def _seen_booked(
    services: Services, record: OrderRecord, order: Order, *, verdict: Qualification
) -> schema.Rebooking | None:
    """A booked order seen again: compare it with what was booked; a rebooking when it is due."""
    rebooks = services.settings.order_changes == "rebook"
    if not rebooks:
        then = N_(
            "the invoice still has the booked figures: correct it in Moneybird, or set ORDER_CHANGES=rebook"
        )
    elif verdict.ok:
        then = N_(
            "woobird credits that invoice in full and books the order as it is now (ORDER_CHANGES=rebook)"
        )
    else:
        then = Message("it is not rebooked while it does not qualify: %(reason)s", reason=verdict.reason)
    changed = await compare_with_booked(services, record, order, then=then)
    if changed is None or not rebooks or not verdict.ok:
        return None
    return await rebook.start(services, record, fingerprint=changed)


async def _since(services: Services) -> datetime:
    if services.settings.sync_since is not None:
        return services.settings.sync_since
    async with transaction(services.sessions) as session:
        return await ledger.first_run_at(session)


async def _ledger_view(
    services: Services, order_id: int, *, record: OrderRecord | None = None
) -> tuple[OrderRecord | None, schema.Rebooking | None, dict[str, str]]:
    """The order's ledger row (read unless given), its rebooking still crediting, and the product
    catalogue: one session."""
    async with services.sessions() as session:
        if record is None:
            record = await ledger.get_order(session, order_id)
        rebooking = await rebook.active_in(session, order_id)
        return record, rebooking, await catalogue_in(session)


def _result(outcome: T | BaseException) -> T:
    """One outcome of `asyncio.gather(..., return_exceptions=True)`: its value, or its exception raised."""
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def _record_for(services: Services, order: Order) -> OrderRecord:
    """The ledger row; orders queued by `woobird sync` or a test may not have one yet."""
    async with transaction(services.sessions) as session:
        record = await ledger.get_order(session, order.id)
        if record is None:
            await ledger.record_delivery(
                session,
                order_id=order.id,
                order_number=order.display_number,
                date_modified=order.date_modified_gmt or schema.utcnow(),
                date_paid=order.date_paid_gmt,
            )
            record = await ledger.get_order(session, order.id)
    assert record is not None
    return record


async def _plan(
    services: Services, order: Order, *, catalogue: dict[str, str], unpaid: bool = False
) -> InvoicePlan:
    with failing_on_refusal(N_("reading the administration")):
        reference = await services.reference.get(services.moneybird)
    options = replace(services.plan_options(), products=catalogue, unpaid=unpaid)
    try:
        return plan_invoice(order, reference=reference, options=options)
    except PlanRefused as exc:
        raise BookingFailed(str(exc), kind="refused") from exc


def _start(
    entry: InvoiceProgress,
    record: OrderRecord,
    *,
    order: Order,
    plan: InvoicePlan,
    reason: str,
    goes_on: bool = False,
) -> None:
    """The booking begins: held, and written with the first step that must be durable — the
    intent before the first call that makes something in Moneybird (a contact, or the invoice).
    A booking that `goes_on` after waiting its turn adds no second "started" to its history."""
    entry.hold(
        event=None if goes_on else "started",
        message=Message("booking (%(reason)s)", reason=Message(reason)),
        state=OrderState.BOOKING.value,
        order_total=plan.total,
        currency=plan.currency,
        customer_email=plan.contact.email or None,
        attempts=record.attempts + 1,
        date_paid=order.date_paid_gmt,
    )


async def _book(
    services: Services,
    entry: InvoiceProgress,
    *,
    record: OrderRecord,
    plan: InvoicePlan,
    open_invoice: bool = False,
) -> Invoice:
    order_id = entry.order_id

    async def replace(gone: str, refused: MoneybirdRejected) -> str:
        return await replace_contact(
            services, order_id=order_id, contact=plan.contact, gone=gone, refused=refused
        )

    try:
        with failing_on_refusal(N_("the order")):
            contact_id = await _contact_step(services, entry, record=record, contact=plan.contact)
    except BaseException:
        await entry.flush()  # the booking began: its row says so before it says why it stopped
        raise
    with failing_on_refusal(N_("the order")):
        if open_invoice:
            sending = open_invoices.sending(services.settings, email=plan.contact.email)
            return await walk(
                services,
                entry,
                plan=plan,
                contact_id=contact_id,
                replace_contact=replace,
                sending=sending,
                pay=False,
            )
        return await walk(services, entry, plan=plan, contact_id=contact_id, replace_contact=replace)


async def _paid_meanwhile(services: Services, order_id: int, failure: BookingFailed) -> bool:
    """Moneybird refused the payment of an order paid in the shop: was its invoice paid meanwhile (the
    bank's payment landed between reading the invoice and paying it)? Then there is one payment."""
    if failure.kind != "rejected":
        return False
    record = await _load(services, order_id)
    if record.invoice_id is None:
        return False
    invoice = await services.moneybird.get_sales_invoice(record.invoice_id)
    paid = open_invoices.money_received(invoice) == invoice.total_price_incl_tax
    if paid:
        log.info("open invoice paid in Moneybird meanwhile", order_id=order_id, invoice_id=invoice.id)
    return paid


class InvoiceProgress(LedgerProgress):
    """The booking walk's view of an order's ledger row: the order's invoice and its steps.

    Given the `record` this try read (under the order's lock, so no other try moves it), it stands
    where that row stood: the try's own steps before the walk touch neither the step nor the ids.
    """

    noun = N_("invoice")
    event = "invoice"
    steps = INVOICE_STEPS
    columns = ("invoice_id", "invoice_number", "payment_id")

    def __init__(self, services: Services, *, order_id: int, record: OrderRecord | None = None) -> None:
        super().__init__(services, order_id=order_id)
        self.record = record

    async def position(self) -> Position:
        record = self.record or await _load(self.services, self.order_id)
        # This try counts as one (`_start`) once it begins: a row read before it still says one less.
        attempts = record.attempts + (1 if self.record is not None else 0)
        return Position(step=record.step, invoice_id=record.invoice_id, retried=attempts > 1)


async def _load(services: Services, order_id: int) -> OrderRecord:
    async with services.sessions() as session:
        record = await ledger.get_order(session, order_id)
    assert record is not None
    return record


# ── contact ──────────────────────────────────────────────────────────────────────────────────


async def _contact_step(
    services: Services, entry: InvoiceProgress, *, record: OrderRecord, contact: PlanContact
) -> str:
    """The order's contact, held to be written with the invoice's intent (a crash before that finds
    the contact again: remembered by e-mail, or in the copy of Moneybird's contacts)."""
    if record.contact_id:
        return record.contact_id
    # The booking's start is written before a contact is created: a try that dies then is `booking`.
    contact_id, done = await ensure_contact(
        services, contact, order_id=entry.order_id, before_create=entry.flush
    )
    entry.hold(event="contact", message=done, contact_id=contact_id, step=OrderStep.CONTACT.value)
    return contact_id


# ── outcome ──────────────────────────────────────────────────────────────────────────────────


def vat_report(plan: InvoicePlan, invoice: Invoice) -> list[dict[str, str]]:
    """Per Moneybird tax rate: the VAT the shop charged against the VAT Moneybird computed."""
    booked = {total.tax_rate_id: total.tax_amount for total in invoice.tax_totals}
    report = []
    for rate_id in sorted(set(plan.shop_vat) | set(booked)):
        shop = plan.shop_vat.get(rate_id, Decimal(0))
        moneybird = booked.get(rate_id, Decimal(0))
        report.append(
            {
                "tax_rate_id": rate_id,
                "shop": money(shop),
                "moneybird": money(moneybird),
                "difference": money(moneybird - shop),
            }
        )
    return report


async def _booked(
    services: Services, order: Order, *, plan: InvoicePlan, invoice: Invoice, open_invoice: bool = False
) -> None:
    """Write the booking down: a paid invoice (`booked`), or an open one (`awaiting_payment`)."""
    report = vat_report(plan, invoice)
    differences = [row for row in report if Decimal(row["difference"]) != 0]
    booked = {"number": number_of(invoice), "total": money(invoice.total_price_incl_tax)}
    rates = ", ".join(f"rate {row['tax_rate_id']}: {row['difference']}" for row in differences)
    if open_invoice and differences:
        message = Message(
            "booked as open invoice %(number)s, total %(total)s, awaiting payment; "
            "VAT differs from the shop's: %(rates)s",
            rates=rates,
            **booked,
        )
    elif open_invoice:
        message = Message("booked as open invoice %(number)s, total %(total)s, awaiting payment", **booked)
    elif differences:
        message = Message(
            "booked as %(number)s, total %(total)s; VAT differs from the shop's: %(rates)s",
            rates=rates,
            **booked,
        )
    else:
        message = Message("booked as %(number)s, total %(total)s", **booked)
    async with transaction(services.sessions) as session:
        record = await ledger.get_order(session, order.id)
        await ledger.update_order(
            session,
            order.id,
            state=(OrderState.AWAITING_PAYMENT if open_invoice else OrderState.BOOKED).value,
            step=(OrderStep.INVOICE_SENT if open_invoice else OrderStep.PAID).value,
            invoice_id=invoice.id,
            invoice_number=number_of(invoice),
            invoice_url=getattr(invoice, "url", None),
            invoice_total=invoice.total_price_incl_tax,
            vat_report=json.dumps(report),
            error=None,
            failure_kind=None,
            booked_at=schema.utcnow(),
            **booked_columns(*version_of(services, order)),
        )
        await ledger.add_event(
            session, order_id=order.id, step="open_invoice" if open_invoice else "booked", message=message
        )
        rebooked = await rebook.mark_booked(session, record, invoice=invoice) if record is not None else None
        if rebooked:
            await ledger.add_event(session, order_id=order.id, step="rebooked", message=rebooked)
    if rebooked:
        await resolve(services, kind=FindingKind.ORDER_CHANGED, order_id=order.id, resolution=rebooked)
    await queue_shop_note(
        services,
        order_id=order.id,
        kind="open_invoice" if open_invoice else "invoice",
        document_id=invoice.id,
        number=number_of(invoice) or invoice.id,
        total=money(invoice.total_price_incl_tax),
        currency=plan.currency,
    )


async def _fail(
    services: Services, order_id: int, failure: BookingFailed, *, keep_state: bool = False
) -> None:
    """The order needs a person; `keep_state`: its open invoice still waits, so it stays findable."""
    state: dict[str, Any] = {} if keep_state else {"state": OrderState.FAILED.value}
    await write_down(
        services,
        order_id=order_id,
        event="failed",
        message=str(failure),
        error=str(failure),
        failure_kind=failure.kind,
        **state,
    )
    log.error("order failed", order_id=order_id, kind=failure.kind, reason=str(failure))
    await alert_order_failed(services, order_id=order_id, kind=failure.kind, message=str(failure))


async def _finish(services: Services, order_id: int, *, state: OrderState, message: str) -> None:
    """Leave the order unbooked (skipped, or paid before SYNC_SINCE), saying why on its row."""
    async with transaction(services.sessions) as session:
        if await ledger.get_order(session, order_id) is None:
            return
        await ledger.update_order(session, order_id, state=state.value, error=message)
        await ledger.add_event(session, order_id=order_id, step=state.value, message=message)
    log.info("order not booked", order_id=order_id, state=state.value, reason=message)
