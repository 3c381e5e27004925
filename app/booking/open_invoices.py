"""Open invoices, paid later: orders paid by bank transfer, on account or on delivery.

    book      an unpaid order of OPEN_INVOICE_PAYMENT_METHODS in one of OPEN_INVOICE_STATUSES walks the
              booking walk (app.booking.walk) without its pay step: contact, create, send with
              OPEN_INVOICE_DELIVERY. The ledger says `awaiting_payment` (app.booking.orders)
    settle    Moneybird recorded a payment (its webhook, the poll that heals a missed one: the job
              `settle_invoice`): the invoice read back; paid in full → the order marked paid in the shop,
              intent first and the order read before the write, so however often it is told the order
              is written once; then a note, and the ledger says `booked`
    the shop first   the order paid in WooCommerce (by hand, by a gateway) comes back as a delivery and
              is booked as any paid order: the walk pays what is open on the invoice, or nothing when
              the bank's payment is already there — one payment either way
    mismatch  a payment that leaves part of the invoice open (or more than its total) is a finding; the
              order is not marked paid
    ended     an order cancelled, refunded or failed while its invoice is open: the invoice credited in
              full with Moneybird's own credit invoice, settled against it (no money moved), and reported

Every order's steps run under its lock, whichever job runs them, so a delivery and a settle never
overlap on one order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import structlog
from sqlalchemy import select

from app import queue
from app.alerts import alert
from app.booking import ledger
from app.booking.changes import compare_with_booked
from app.booking.findings import note
from app.booking.intake import ENDED_UNPAID
from app.booking.shop_notes import queue_shop_note
from app.booking.walk import MANUAL, BookingFailed, failing_on_refusal, is_open, write_down
from app.constants import ORDER_LOCK_PREFIX
from app.db import transaction
from app.i18n import N_, Message
from app.jobs import exclusively, retry_transient
from app.metrics import JOBS
from app.money import money
from app.moneybird.models import SalesInvoice, SalesInvoiceSending
from app.runtime import Services, services_of
from app.schema import FindingKind, OrderRecord, OrderState, OrderStep
from app.settings import Settings
from app.woocommerce.errors import WooCommerceError, WooCommerceTransient
from app.woocommerce.models import Order

log = structlog.get_logger("woobird.open_invoices")

# The ledger events of this module, as the dashboard lists them.
SETTLED_EVENT: Final = "settled"
CREDITED_EVENT: Final = "open_invoice_credited"


def sending(settings: Settings, *, email: str) -> SalesInvoiceSending:
    """How an open invoice is sent: by Moneybird's e-mail (with its payment details and reminders) when
    OPEN_INVOICE_DELIVERY=Email and the order has an address — Moneybird refuses Email without one."""
    if settings.open_invoice_delivery == "Email" and email:
        return SalesInvoiceSending(delivery_method="Email", email_address=email)
    return MANUAL


async def enqueue_settle(services: Services, invoice_id: str, *, reason: str) -> bool:
    """Queue the settle job for an invoice; False: one already waits."""
    return await queue.enqueue_settle(
        services.redis, invoice_id=invoice_id, reason=reason, connection_id=services.connection_id
    )


# ── paid in Moneybird ────────────────────────────────────────────────────────────────────────


async def settle_invoice_job(ctx: dict[str, Any], invoice_id: str, reason: str) -> str:
    """Moneybird may have recorded a payment on this invoice (or the invoice changed): settle its order.

    An invoice no order awaits payment on (not woobird's, or settled already) is left alone.
    """
    services = services_of(ctx)
    order_id = await order_awaiting(services, invoice_id)
    if order_id is None:
        return f"no order awaits payment on invoice {invoice_id}"
    return await _settle_order_job(ctx, order_id, invoice_id, reason)


async def _gave_up(services: Services, args: tuple[Any, ...], message: str) -> None:
    order_id, invoice_id = int(args[0]), str(args[1])
    async with transaction(services.sessions) as session:
        await ledger.add_event(
            session, order_id=order_id, step="settle_failed", message=f"invoice {invoice_id}: {message}"
        )


@retry_transient("settle", give_up=_gave_up)
async def _settle_order_job(ctx: dict[str, Any], order_id: int, invoice_id: str, reason: str) -> str:
    services = services_of(ctx)
    async with exclusively(services, f"{ORDER_LOCK_PREFIX}{order_id}"):
        return await settle_invoice(services, order_id=order_id, invoice_id=invoice_id, reason=reason)


async def order_awaiting(services: Services, invoice_id: str) -> int | None:
    """The order whose open invoice this is (by the state index: only orders awaiting payment)."""
    query = select(OrderRecord.order_id).where(
        OrderRecord.state == OrderState.AWAITING_PAYMENT.value, OrderRecord.invoice_id == invoice_id
    )
    async with services.sessions() as session:
        found = (await session.execute(query)).scalar_one_or_none()
    return int(found) if found is not None else None


async def settle_invoice(services: Services, *, order_id: int, invoice_id: str, reason: str) -> str:
    """Read the invoice; paid in full → mark the order paid (once); in part → report. Says what it did."""
    record = await _load(services, order_id)
    if record.state != OrderState.AWAITING_PAYMENT or record.invoice_id != invoice_id:
        return f"order {order_id} does not await payment on invoice {invoice_id} ({record.state})"
    try:
        with failing_on_refusal("reading the invoice"):
            invoice = await services.moneybird.get_sales_invoice(invoice_id)
    except BookingFailed as exc:
        await _event(services, order_id, "settle_failed", f"invoice {invoice_id}: {exc}")
        JOBS.labels(kind="settle", outcome="failed", connection=str(services.connection_id)).inc()
        return str(exc)
    number = invoice.invoice_id or invoice_id
    received = money_received(invoice)
    if received == 0:
        return f"invoice {number} is not paid ({invoice.state})"
    if received != invoice.total_price_incl_tax:
        await report_mismatch(services, record, invoice, received=received)
        return (
            f"invoice {number} is paid {money(received)} of {money(invoice.total_price_incl_tax)}: reported"
        )
    try:
        order = await services.shop.get_order(order_id)
    except WooCommerceTransient:
        raise
    except WooCommerceError as exc:
        return await _shop_refused(services, record, number=number, error=str(exc))
    if order.status in ENDED_UNPAID:
        await note(
            services,
            kind=FindingKind.PAYMENT_MISMATCH,
            subject=f"{order_id}:{invoice_id}:ended",
            message=Message(
                "invoice %(number)s of order %(order)s was paid in Moneybird, but the order is %(status)s in "
                "the shop: woobird leaves it so. Refund the customer, or restore the order.",
                number=number,
                order=order.display_number,
                status=order.status,
            ),
            order_id=order_id,
            invoice_id=invoice_id,
        )
        return f"invoice {number} is paid, the order is {order.status}: reported"
    payment = invoice.payments[-1]
    await write_down(
        services,
        order_id=order_id,
        event="marking_paid",
        message=Message(
            "invoice %(number)s paid in Moneybird (%(reason)s): marking the order paid",
            number=number,
            reason=reason,
        ),
        step=OrderStep.MARKING_PAID.value,
        payment_id=payment.id,
    )
    try:
        marked = await _mark_paid(services, order, number=number)
    except WooCommerceTransient:
        raise
    except WooCommerceError as exc:
        return await _shop_refused(services, record, number=number, error=str(exc))
    await _settled(services, record, invoice, order=marked, payment_id=payment.id, reason=reason)
    return f"order {order_id} marked paid: invoice {number} was paid in Moneybird"


def money_received(invoice: SalesInvoice) -> Decimal:
    """What was paid on the invoice in money: a credit invoice settled against it is no payment."""
    return sum((p.price for p in invoice.payments if p.credit_invoice_id is None), Decimal(0))


async def _mark_paid(services: Services, order: Order, *, number: str) -> Order:
    """The order as paid in the shop: written only when the shop does not show it paid already (a
    payment by hand, or an earlier try whose answer was lost)."""
    status = services.settings.paid_order_status
    if order.date_paid_gmt is not None or order.status == status:
        log.info("order already paid in the shop", order_id=order.id, status=order.status, invoice=number)
        return order
    marked = await services.shop.mark_order_paid(order.id, status=status)
    log.info("order marked paid", order_id=order.id, status=marked.status, invoice=number)
    return marked


async def _settled(
    services: Services,
    record: OrderRecord,
    invoice: SalesInvoice,
    *,
    order: Order,
    payment_id: str,
    reason: str,
) -> None:
    number = invoice.invoice_id or invoice.id
    message = Message(
        "paid in Moneybird (%(reason)s); the order is %(status)s in the shop",
        reason=reason,
        status=order.status,
    )
    if order.date_paid_gmt is None:
        # WooCommerce sets date_paid only on the move into its payment-complete status.
        message = Message(
            "paid in Moneybird (%(reason)s); the order is %(status)s in the shop, without a paid date "
            "(WooCommerce sets one when the order moves to processing or completed)",
            reason=reason,
            status=order.status,
        )
    async with transaction(services.sessions) as session:
        await ledger.update_order(
            session,
            record.order_id,
            state=OrderState.BOOKED.value,
            step=OrderStep.PAID.value,
            payment_id=payment_id,
            date_paid=order.date_paid_gmt,
            error=None,
            failure_kind=None,
        )
        await ledger.add_event(session, order_id=record.order_id, step=SETTLED_EVENT, message=message)
    JOBS.labels(kind="settle", outcome="settled", connection=str(services.connection_id)).inc()
    await queue_shop_note(
        services,
        order_id=record.order_id,
        kind="invoice_paid",
        document_id=invoice.id,
        number=number,
        total=money(invoice.total_price_incl_tax),
        currency=invoice.currency or record.currency,
    )


async def report_mismatch(
    services: Services, record: OrderRecord, invoice: SalesInvoice, *, received: Decimal
) -> None:
    """A payment that does not settle the invoice: reported once per amount, never forced onto the order."""
    number = invoice.invoice_id or invoice.id
    total = invoice.total_price_incl_tax
    what = N_("paid in part") if abs(received) < abs(total) else N_("paid more than its total")
    await note(
        services,
        kind=FindingKind.PAYMENT_MISMATCH,
        subject=f"{record.order_id}:{invoice.id}:{received}",
        message=Message(
            "invoice %(number)s of order %(order)s is %(what)s: %(received)s of %(total)s %(currency)s. "
            "woobird leaves the order unpaid in the shop; settle the difference in Moneybird (or mark the "
            "order paid by hand).",
            number=number,
            order=record.order_number,
            what=Message(what),
            received=money(received),
            total=money(total),
            currency=invoice.currency,
        ),
        order_id=record.order_id,
        invoice_id=invoice.id,
    )


async def _shop_refused(services: Services, record: OrderRecord, *, number: str, error: str) -> str:
    """The shop refused to show or save the order: said on its row and alerted; it still awaits, so the
    next word from Moneybird (or `woobird` after the fix) tries again."""
    message = Message(
        "invoice %(number)s is paid in Moneybird, but the shop refused to mark order %(order)s paid: "
        "%(error)s. Check PAID_ORDER_STATUS and the key's Read/Write permission, or mark it by hand.",
        number=number,
        order=record.order_number,
        error=error,
    )
    await _event(services, record.order_id, "settle_failed", message)
    JOBS.labels(kind="settle", outcome="failed", connection=str(services.connection_id)).inc()
    log.warning("order not marked paid", order_id=record.order_id, invoice=number, error=error)
    await alert(services, cause=f"settle:{record.order_id}", message=message)
    return message


# ── seen again in the shop ───────────────────────────────────────────────────────────────────


async def seen_again(services: Services, record: OrderRecord, order: Order) -> str | None:
    """An order whose open invoice waits, delivered again: what became of it.

    None when it was paid in the shop: the caller books it as any paid order (the walk pays what is
    open). Otherwise the state it stays in: still awaiting payment, or credited because it ended.
    """
    if order.status in ENDED_UNPAID:
        return await credit_open_invoice(services, record, order=order)
    if order.date_paid_gmt is None:
        then = "the open invoice keeps the booked figures: correct it in Moneybird before it is paid"
        await compare_with_booked(services, record, order, then=then)
        return OrderState.AWAITING_PAYMENT
    assert record.invoice_id is not None
    with failing_on_refusal("reading the invoice"):
        invoice = await services.moneybird.get_sales_invoice(record.invoice_id)
    received = money_received(invoice)
    if received not in (0, invoice.total_price_incl_tax):
        # The bank paid part, and the shop says paid: paying the rest would be a guess.
        await report_mismatch(services, record, invoice, received=received)
        return OrderState.AWAITING_PAYMENT
    return None


async def credit_open_invoice(services: Services, record: OrderRecord, *, order: Order) -> str:
    """Credit the open invoice of an order that ended unpaid, in full, and report it.

    Moneybird's own credit invoice (`duplicate_creditinvoice`) is linked to the original, so it is
    settled against it (`register_payment_creditinvoice`): the invoice is closed and no money is
    booked as moved. Each step looks before it writes — a credit of this invoice already in
    Moneybird is adopted, a sent one not sent again, a settled one not settled again.
    """
    assert record.invoice_id is not None
    moneybird = services.moneybird
    with failing_on_refusal("the credit invoice"):
        original = await moneybird.get_sales_invoice(record.invoice_id)
        number = original.invoice_id or original.id
        if money_received(original) != 0:
            await note(
                services,
                kind=FindingKind.PAYMENT_MISMATCH,
                subject=f"{record.order_id}:{original.id}:ended",
                message=Message(
                    "order %(order)s is %(status)s in the shop, but invoice %(number)s has payments of "
                    "%(received)s: woobird leaves it so. Credit it and refund the customer in Moneybird.",
                    order=order.display_number,
                    status=order.status,
                    number=number,
                    received=money(money_received(original)),
                ),
                order_id=record.order_id,
                invoice_id=original.id,
            )
            return OrderState.AWAITING_PAYMENT
        await _event(
            services,
            record.order_id,
            CREDITED_EVENT,
            Message(
                "the order is %(status)s: crediting open invoice %(number)s in full",
                status=order.status,
                number=number,
            ),
        )
        credit = await _credit_of(services, original)
        if credit.state == "draft":
            credit = await moneybird.send_sales_invoice(credit.id, MANUAL)
        if is_open(credit) and is_open(original):
            credit = await moneybird.register_payment_creditinvoice(credit.id)
    credit_number = credit.invoice_id or credit.id
    message = Message(
        "open invoice %(number)s credited in full as %(credit)s (%(total)s): "
        "the order is %(status)s in the shop",
        number=number,
        credit=credit_number,
        total=money(credit.total_price_incl_tax),
        status=order.status,
    )
    async with transaction(services.sessions) as session:
        await ledger.update_order(session, record.order_id, state=OrderState.CREDITED.value, error=None)
        await ledger.add_event(session, order_id=record.order_id, step=CREDITED_EVENT, message=message)
    await note(
        services,
        kind=FindingKind.OPEN_INVOICE_CREDITED,
        subject=f"{record.order_id}:{original.id}",
        message=Message("order %(order)s: %(what)s", order=order.display_number, what=message),
        order_id=record.order_id,
        invoice_id=original.id,
    )
    await queue_shop_note(
        services,
        order_id=record.order_id,
        kind="open_invoice_credited",
        document_id=credit.id,
        number=credit_number,
        total=money(credit.total_price_incl_tax),
        currency=credit.currency or record.currency,
        replaces=number,
    )
    log.info("open invoice credited", order_id=record.order_id, invoice=number, credit=credit_number)
    return OrderState.CREDITED


async def _credit_of(services: Services, original: SalesInvoice) -> SalesInvoice:
    """The credit invoice of `original`: one made before (an answer lost) or a new one."""
    if original.reference:
        for found in await services.moneybird.find_sales_invoices(reference=original.reference):
            if found.original_sales_invoice_id == original.id:
                return found
    return await services.moneybird.duplicate_credit_invoice(original.id)


# ── the ledger ───────────────────────────────────────────────────────────────────────────────


async def _load(services: Services, order_id: int) -> OrderRecord:
    async with services.sessions() as session:
        record = await ledger.get_order(session, order_id)
    assert record is not None
    return record


async def _event(services: Services, order_id: int, step: str, message: str) -> None:
    async with transaction(services.sessions) as session:
        await ledger.add_event(session, order_id=order_id, step=step, message=message)
