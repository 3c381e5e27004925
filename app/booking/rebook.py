"""ORDER_CHANGES=rebook: an order changed after booking is credited in full and booked as it is now.

    start     a `rebookings` row (the order, the version to make, the invoice to credit) and the
              order back in `booking`, in one transaction: a crash from here on is resumed by
              whatever runs the order's job next (a delivery, reconciliation's stale requeue)
    credit    the booking walk (app.booking.walk) over that row: a credit invoice with every line
              of the booked invoice negated, as Moneybird has it — `WooCommerce #1042 v2 credit`
              — sent and settled with one negative payment, adopted by reference after a lost answer
    reset     the credit written down and the order's invoice ids cleared, in one transaction
    rebook    the order's normal booking, under the next version's reference `WooCommerce #1042 v2`,
              dated today like its credit: the period of the first invoice may be closed

Refunds wait while an order is rebooked (their order is not `booked`) and are credited after it,
to the contact of the new invoice; the ones credited before keep their credit invoices, which the
full credit of the old invoice does not undo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.booking import ledger
from app.booking.contacts import order_contact, replace_contact
from app.booking.shop_notes import queue_shop_note
from app.booking.walk import (
    CREDIT_STEPS,
    BookingFailed,
    Invoice,
    LedgerProgress,
    Position,
    Steps,
    failing_on_refusal,
    invoice_operations,
    number_of,
    walk,
)
from app.constants import INVOICE_REFERENCE_PREFIX
from app.db import transaction
from app.i18n import N_
from app.invoicing.plan import InvoicePlan, local_date
from app.money import money
from app.moneybird.errors import MoneybirdRejected
from app.plan_options import plan_options
from app.runtime import Services
from app.schema import OrderRecord, OrderState, Rebooking, RebookState, utcnow
from app.woocommerce.models import Order

log = structlog.get_logger("woobird.rebook")


def version_reference(order_number: str, version: int, *, prefix: str = INVOICE_REFERENCE_PREFIX) -> str:
    """`WooCommerce #1042` for the first invoice, `WooCommerce #1042 v2` for the next."""
    base = f"{prefix}{order_number}"
    return base if version <= 1 else f"{base} v{version}"


def credit_reference(order_number: str, version: int, *, prefix: str = INVOICE_REFERENCE_PREFIX) -> str:
    """The credit invoice that makes way for `version`: `WooCommerce #1042 v2 credit`."""
    return f"{version_reference(order_number, version, prefix=prefix)} credit"


def versioned(plan: InvoicePlan, record: OrderRecord, *, today: date) -> InvoicePlan:
    """The plan under its version's reference; a rebooked version is dated today."""
    if record.invoice_version <= 1:
        return plan
    prefix = plan.reference.removesuffix(plan.order_number)
    reference = version_reference(plan.order_number, record.invoice_version, prefix=prefix)
    return replace(plan, reference=reference, invoice_date=today, payment_date=today)


def today(services: Services) -> date:
    """The shop's calendar day: what a correction made now is dated."""
    return local_date(utcnow(), plan_options(services.settings).timezone)


async def active(services: Services, order_id: int) -> Rebooking | None:
    """The rebooking still crediting this order's old invoice, if one is."""
    async with services.sessions() as session:
        return await active_in(session, order_id)


async def active_in(session: AsyncSession, order_id: int) -> Rebooking | None:
    """`active` in a session the caller reads more with."""
    query = select(Rebooking).where(
        Rebooking.order_id == order_id, Rebooking.state == RebookState.CREDITING.value
    )
    return (await session.execute(query)).scalar_one_or_none()


async def start(services: Services, record: OrderRecord, *, fingerprint: str) -> Rebooking:
    """Begin rebooking `record`'s order: its row and the order's state change in one transaction."""
    assert record.invoice_id is not None
    version = record.invoice_version + 1
    now = utcnow()
    async with transaction(services.sessions) as session:
        session.add(
            Rebooking(
                order_id=record.order_id,
                version=version,
                state=RebookState.CREDITING.value,
                fingerprint=fingerprint,
                old_invoice_id=record.invoice_id,
                old_invoice_number=record.invoice_number,
                old_total=record.invoice_total,
                created_at=now,
                updated_at=now,
            )
        )
        await ledger.update_order(session, record.order_id, state=OrderState.BOOKING.value, error=None)
        await ledger.add_event(
            session,
            order_id=record.order_id,
            step="rebooking",
            message=(
                f"rebooking as version {version}: crediting {record.invoice_number or record.invoice_id} "
                "in full"
            ),
        )
    log.info("rebooking", order_id=record.order_id, version=version, invoice_id=record.invoice_id)
    found = await _get(services, record.order_id, version)
    assert found is not None
    return found


async def credit_old_invoice(services: Services, rebooking: Rebooking, *, order: Order) -> Invoice:
    """Credit the old invoice in full (resumable), then clear the order's ids for the next version."""
    kind = invoice_operations(services.settings)

    async def replace(gone: str, refused: MoneybirdRejected) -> str:
        customer = order_contact(order, settings=services.settings)
        replacement = await replace_contact(
            services, order_id=order.id, contact=customer, gone=gone, refused=refused
        )
        await _set(services, rebooking, contact_id=replacement)  # a lost answer is looked for under it
        return replacement

    with failing_on_refusal(N_("the credit invoice")):
        old = await kind.get(services.moneybird, rebooking.old_invoice_id)
        contact_id = rebooking.contact_id or old.contact_id
        if contact_id is None:
            raise BookingFailed(
                f"invoice {rebooking.old_invoice_id} has no contact to credit", kind="rejected"
            )
        plan = full_credit(
            old,
            reference=credit_reference(
                order.display_number, rebooking.version, prefix=services.plan_options().reference_prefix
            ),
            today=today(services),
        )
        entry = RebookCreditProgress(services, rebooking)
        credit = await walk(services, entry, plan=plan, contact_id=contact_id, replace_contact=replace)
    await _credited(services, rebooking, credit=credit)
    return credit


async def failed(services: Services, order_id: int, *, message: str) -> None:
    """Note why the rebooking stopped on its row (the order's row says it too)."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Rebooking)
            .where(Rebooking.order_id == order_id, Rebooking.state == RebookState.CREDITING.value)
            .values(error=message, updated_at=utcnow())
        )


async def mark_booked(session: AsyncSession, record: OrderRecord, *, invoice: Invoice) -> str | None:
    """In the booking's own transaction: the rebooking that made this version is done."""
    if record.invoice_version <= 1:
        return None
    query = select(Rebooking).where(
        Rebooking.order_id == record.order_id, Rebooking.version == record.invoice_version
    )
    rebooking = (await session.execute(query)).scalar_one_or_none()
    if rebooking is None or rebooking.state == RebookState.DONE:
        return None
    rebooking.state = RebookState.DONE.value
    rebooking.new_invoice_id = invoice.id
    rebooking.new_invoice_number = number_of(invoice)
    rebooking.error = None
    rebooking.updated_at = utcnow()
    return (
        f"rebooked: {rebooking.old_invoice_number or rebooking.old_invoice_id} credited in full as "
        f"{rebooking.credit_invoice_number or rebooking.credit_invoice_id}, the order booked as it is now"
    )


# ── the credit ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class FullCreditLine:
    description: str
    quantity: Decimal
    price: Decimal
    tax_rate_id: str
    ledger_account_id: str | None
    product_id: str | None


@dataclass(frozen=True, slots=True)
class FullCreditPlan:
    """A credit invoice with every line of `invoice` negated: its total is minus the invoice's."""

    reference: str
    invoice_date: date
    currency: str
    prices_are_incl_tax: bool
    lines: tuple[FullCreditLine, ...]
    total: Decimal
    workflow_id: str | None = None
    document_style_id: str | None = None
    payment_reference: str = ""

    @property
    def payment_date(self) -> date:
        return self.invoice_date


def full_credit(invoice: Invoice, *, reference: str, today: date) -> FullCreditPlan:
    """Every line of the booked invoice with its quantity negated, as Moneybird holds them."""
    number = number_of(invoice) or invoice.id
    lines = []
    for detail in invoice.details:
        if detail.tax_rate_id is None:
            raise BookingFailed(
                f"line {detail.id} of invoice {number} has no tax rate; credit it by hand", kind="refused"
            )
        lines.append(
            FullCreditLine(
                description=f"Credit {number}: {detail.description or ''}".strip(),
                quantity=-_quantity(detail.amount_decimal, detail.amount),
                price=detail.price,
                tax_rate_id=detail.tax_rate_id,
                ledger_account_id=detail.ledger_account_id,
                product_id=detail.product_id,
            )
        )
    return FullCreditPlan(
        reference=reference,
        invoice_date=today,
        currency=invoice.currency,
        prices_are_incl_tax=invoice.prices_are_incl_tax,
        lines=tuple(lines),
        total=-invoice.total_price_incl_tax,
        workflow_id=getattr(invoice, "workflow_id", None),
        document_style_id=getattr(invoice, "document_style_id", None),
    )


def _quantity(decimal: Decimal | None, text: str | None) -> Decimal:
    if decimal is not None:
        return decimal
    # The display form "2 x" when the number itself is missing.
    word = (text or "1").split()[0].replace(",", ".")
    return Decimal(word)


class RebookCreditProgress(LedgerProgress):
    """The booking walk's view of a rebooking's row: the old invoice's credit and its steps."""

    noun = N_("credit invoice")
    event = "rebook_credit"
    steps: Steps = CREDIT_STEPS
    columns = ("credit_invoice_id", "credit_invoice_number", "payment_id")

    def __init__(self, services: Services, rebooking: Rebooking) -> None:
        super().__init__(services, order_id=rebooking.order_id)
        self.version = rebooking.version

    async def position(self) -> Position:
        found = await _get(self.services, self.order_id, self.version)
        assert found is not None
        return Position(step=found.step, invoice_id=found.credit_invoice_id)

    async def update_row(self, session: AsyncSession, **values: Any) -> None:
        await session.execute(
            update(Rebooking)
            .where(Rebooking.order_id == self.order_id, Rebooking.version == self.version)
            .values(updated_at=utcnow(), **values)
        )


async def _set(services: Services, rebooking: Rebooking, **values: Any) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Rebooking)
            .where(Rebooking.order_id == rebooking.order_id, Rebooking.version == rebooking.version)
            .values(updated_at=utcnow(), **values)
        )


async def _get(services: Services, order_id: int, version: int) -> Rebooking | None:
    async with services.sessions() as session:
        query = select(Rebooking).where(Rebooking.order_id == order_id, Rebooking.version == version)
        return (await session.execute(query)).scalar_one_or_none()


async def _credited(services: Services, rebooking: Rebooking, *, credit: Invoice) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Rebooking)
            .where(Rebooking.order_id == rebooking.order_id, Rebooking.version == rebooking.version)
            .values(
                state=RebookState.BOOKING.value,
                step=CREDIT_STEPS.paid,
                credit_invoice_id=credit.id,
                credit_invoice_number=number_of(credit),
                credit_total=credit.total_price_incl_tax,
                error=None,
                updated_at=utcnow(),
            )
        )
        # The order starts over as its next version: contact, invoice and payment found anew.
        await ledger.update_order(
            session,
            rebooking.order_id,
            invoice_version=rebooking.version,
            step=None,
            contact_id=None,
            invoice_id=None,
            invoice_number=None,
            invoice_url=None,
            invoice_total=None,
            payment_id=None,
            vat_report=None,
            attempts=0,
        )
        await ledger.add_event(
            session,
            order_id=rebooking.order_id,
            step="credited",
            message=(
                f"credited {rebooking.old_invoice_number or rebooking.old_invoice_id} in full as "
                f"{number_of(credit)} ({credit.total_price_incl_tax}); booking version {rebooking.version}"
            ),
        )
    await queue_shop_note(
        services,
        order_id=rebooking.order_id,
        kind="rebooking_credit",
        document_id=credit.id,
        number=number_of(credit) or credit.id,
        total=money(credit.total_price_incl_tax),
        currency=credit.currency or "EUR",
        replaces=rebooking.old_invoice_number or rebooking.old_invoice_id or "",
    )
