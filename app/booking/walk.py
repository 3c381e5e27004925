"""The booking walk: one plan becomes one paid Moneybird document, exactly once.

    adopt   the ledger's id → after a create that may have happened, look it up by reference
    create  intent written first, then the create, then its id: an unanswered create is adopted
            on the next try, never repeated
    send    sales invoices only: delivery method Manual, numbered, no e-mail to the customer
    pay     one payment of what is still open, intent first; an unanswered payment leaves nothing
            open, so the next try sees it was made

An order's invoice (app.booking.orders) and a refund's credit invoice (app.booking.refunds) walk the
same steps. They differ in where the steps are written down — a `ProgressRow` over the order's or the
refund's ledger row — and in the invoice kind (`INVOICE_KIND`), which says how Moneybird is asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.booking import ledger
from app.booking.documents import DocumentPlan, external_invoice_body, sales_invoice_body
from app.db import transaction
from app.i18n import N_, Message
from app.money import money
from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import MoneybirdConfigurationError, MoneybirdRejected
from app.moneybird.models import (
    ExternalSalesInvoice,
    Payment,
    PaymentCreate,
    SalesInvoice,
    SalesInvoiceSending,
)
from app.runtime import Services
from app.schema import OrderStep, RefundStep, utcnow
from app.settings import Settings

Invoice = SalesInvoice | ExternalSalesInvoice


class BookingFailed(Exception):
    """Nothing more can be booked until a person acts; `kind` says why, the message how."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


# ── the ledger side ──────────────────────────────────────────────────────────────────────────


class Steps(NamedTuple):
    """What one kind of ledger row calls the walk's steps in its `step` column."""

    creating: str  # the create was sent: the document may exist even if no answer came
    created: str
    sent: str
    paying: str  # the payment was sent: look before paying again
    paid: str


INVOICE_STEPS = Steps(
    OrderStep.INVOICE_CREATING,
    OrderStep.INVOICE_CREATED,
    OrderStep.INVOICE_SENT,
    OrderStep.PAYING,
    OrderStep.PAID,
)
CREDIT_STEPS = Steps(
    RefundStep.CREDIT_CREATING,
    RefundStep.CREDIT_CREATED,
    RefundStep.CREDIT_SENT,
    RefundStep.PAYING,
    RefundStep.PAID,
)


@dataclass(frozen=True)
class Position:
    """Where an entry stands when a try begins."""

    step: str | None
    invoice_id: str | None  # the Moneybird document written down, if any
    retried: bool = False  # an earlier try of this entry may have died before writing a create down


class ProgressRow(Protocol):
    """The ledger row a walk writes its steps to: an order's for its invoice, a refund's for its credit."""

    @property
    def noun(self) -> str:
        """How the ledger's events name the document: "invoice", "credit invoice"."""

    @property
    def event(self) -> str:
        """The ledger event of creating it: "invoice", "credit"."""

    @property
    def steps(self) -> Steps: ...

    async def position(self) -> Position: ...

    async def write(
        self,
        *,
        event: str,
        message: str,
        step: str,
        invoice_id: str | None = None,
        number: str | None = None,
        payment_id: str | None = None,
    ) -> None:
        """Write the step down, with the ids it produced (None: unchanged), and its event; the steps
        held back (`hold`) go first, in the same transaction."""

    def hold(
        self,
        *,
        event: str,
        message: str,
        step: str,
        invoice_id: str | None = None,
        number: str | None = None,
    ) -> None:
        """Keep a step to be written with the next `write` or `flush`: for a step whose loss a crash
        cannot turn into a second document (the next try adopts what it made by reference)."""

    async def flush(self) -> None:
        """Write the steps held back, if any."""


@dataclass(frozen=True)
class HeldStep:
    """A step kept back to be written in the transaction of the next one (`ProgressRow.hold`)."""

    event: str | None
    message: str
    at: datetime
    values: dict[str, Any]


class LedgerProgress:
    """A `ProgressRow` over the order's row, or with `refund_id` the refund's; subclasses say where it stands.

    `columns` name where the document's id, its number and the payment's id are written.

    Each transaction on the critical path costs a round trip to the database while the customer waits;
    a step that need not be durable before the next call to Moneybird is held and written with the
    next step that must be (the intent before a create or a payment), in one transaction.
    """

    noun: str
    event: str
    steps: Steps
    columns: tuple[str, str, str]

    def __init__(self, services: Services, *, order_id: int, refund_id: int | None = None) -> None:
        self.services = services
        self.order_id = order_id
        self.refund_id = refund_id
        self.held: list[HeldStep] = []

    def hold(
        self,
        *,
        event: str | None,
        message: str,
        step: str | None = None,
        invoice_id: str | None = None,
        number: str | None = None,
        **columns: Any,
    ) -> None:
        """`ProgressRow.hold`; `columns` are other columns of the row the step sets (its contact).
        A step without an `event` changes the row and adds nothing to the order's history."""
        values = self._values(step=step, invoice_id=invoice_id, number=number) | columns
        self.held.append(HeldStep(event, message, utcnow(), values))

    async def write(
        self,
        *,
        event: str,
        message: str,
        step: str,
        invoice_id: str | None = None,
        number: str | None = None,
        payment_id: str | None = None,
    ) -> None:
        self.hold(event=event, message=message, step=step, invoice_id=invoice_id, number=number)
        if payment_id is not None:
            self.held[-1].values[self.columns[2]] = payment_id
        await self.flush()

    async def flush(self) -> None:
        if not self.held:
            return
        values: dict[str, Any] = {}
        for held in self.held:
            values |= held.values  # a later step's values win: its step, its ids
        async with transaction(self.services.sessions) as session:
            if values:
                await self.update_row(session, **values)
            events = [(held.event, held.message, held.at) for held in self.held if held.event is not None]
            if events:
                await ledger.add_events(session, events, order_id=self.order_id, refund_id=self.refund_id)
        self.held.clear()

    def _values(self, *, step: str | None, invoice_id: str | None, number: str | None) -> dict[str, Any]:
        ids = zip(self.columns[:2], (invoice_id, number), strict=True)
        values: dict[str, Any] = {column: value for column, value in ids if value is not None}
        return values if step is None else {"step": step, **values}

    async def update_row(self, session: AsyncSession, **values: Any) -> None:
        """Write `values` to the row: the order's, or with `refund_id` the refund's."""
        if self.refund_id is None:
            await ledger.update_order(session, self.order_id, **values)
        else:
            await ledger.update_refund(session, self.refund_id, **values)


async def write_down(
    services: Services,
    *,
    order_id: int,
    refund_id: int | None = None,
    event: str,
    message: str = "",
    **values: Any,
) -> None:
    """Update the order's row (the refund's, given `refund_id`) and add the event, in one transaction."""
    async with transaction(services.sessions) as session:
        if refund_id is None:
            await ledger.update_order(session, order_id, **values)
        else:
            await ledger.update_refund(session, refund_id, **values)
        await ledger.add_event(session, order_id=order_id, refund_id=refund_id, step=event, message=message)


# ── the Moneybird side ───────────────────────────────────────────────────────────────────────


class BookingPlan(DocumentPlan, Protocol):
    """A document plan the walk can book: what it must total and how it is paid."""

    @property
    def total(self) -> Decimal: ...
    @property
    def payment_date(self) -> date: ...
    @property
    def payment_reference(self) -> str: ...


class InvoiceOperations(Protocol):
    """How one kind of Moneybird document is read, found, created, sent and paid."""

    @property
    def made(self) -> str:
        """How a fresh one is described: "draft" (sent later) or "external" (open at once)."""

    async def get(self, moneybird: MoneybirdClient, invoice_id: str) -> Invoice: ...
    async def find(
        self, moneybird: MoneybirdClient, *, reference: str, contact_id: str
    ) -> Invoice | None: ...
    async def create(self, moneybird: MoneybirdClient, plan: DocumentPlan, *, contact_id: str) -> Invoice: ...
    async def send_draft(
        self, moneybird: MoneybirdClient, invoice: Invoice, sending: SalesInvoiceSending
    ) -> Invoice | None:
        """Send it when it is a draft; None when there is nothing to send."""

    async def pay(self, moneybird: MoneybirdClient, invoice_id: str, payment: PaymentCreate) -> Payment: ...


# Manual: Moneybird numbers it without e-mailing the customer, who has the shop's invoice.
MANUAL = SalesInvoiceSending(delivery_method="Manual")


class SalesInvoices:
    made = N_("draft")

    async def get(self, moneybird: MoneybirdClient, invoice_id: str) -> Invoice:
        return await moneybird.get_sales_invoice(invoice_id)

    async def find(self, moneybird: MoneybirdClient, *, reference: str, contact_id: str) -> Invoice | None:
        return await moneybird.find_sales_invoice_by_reference(reference)

    async def create(self, moneybird: MoneybirdClient, plan: DocumentPlan, *, contact_id: str) -> Invoice:
        return await moneybird.create_sales_invoice(sales_invoice_body(plan, contact_id=contact_id))

    async def send_draft(
        self, moneybird: MoneybirdClient, invoice: Invoice, sending: SalesInvoiceSending
    ) -> Invoice | None:
        if invoice.state != "draft":
            return None
        return await moneybird.send_sales_invoice(invoice.id, sending)

    async def pay(self, moneybird: MoneybirdClient, invoice_id: str, payment: PaymentCreate) -> Payment:
        return await moneybird.create_sales_invoice_payment(invoice_id, payment)


class ExternalSalesInvoices:
    made = N_("external")

    async def get(self, moneybird: MoneybirdClient, invoice_id: str) -> Invoice:
        return await moneybird.get_external_sales_invoice(invoice_id)

    async def find(self, moneybird: MoneybirdClient, *, reference: str, contact_id: str) -> Invoice | None:
        found = await moneybird.find_external_sales_invoices(reference=reference, contact_id=contact_id)
        return found[0] if found else None  # oldest first

    async def create(self, moneybird: MoneybirdClient, plan: DocumentPlan, *, contact_id: str) -> Invoice:
        return await moneybird.create_external_sales_invoice(
            external_invoice_body(plan, contact_id=contact_id)
        )

    async def send_draft(
        self, moneybird: MoneybirdClient, invoice: Invoice, sending: SalesInvoiceSending
    ) -> Invoice | None:
        return None  # created open: there is no draft and nothing to send

    async def pay(self, moneybird: MoneybirdClient, invoice_id: str, payment: PaymentCreate) -> Payment:
        return await moneybird.create_external_sales_invoice_payment(invoice_id, payment)


def invoice_operations(settings: Settings) -> InvoiceOperations:
    return ExternalSalesInvoices() if settings.invoice_kind == "external_sales_invoice" else SalesInvoices()


def refuses_contact(exc: MoneybirdRejected) -> bool:
    """Moneybird refused a document because of its contact: unknown, deleted or archived.

    Documented: `400 {"error": "Contact ID is invalid", "symbolic": {"external_sales_invoice":
    {"contact_id": "contact_invalid"}}}`; a 422 naming `contact_id` means the same.
    """
    return exc.status in (400, 404, 422) and names_field(exc.body, "contact_id")


def names_field(body: Any, field: str) -> bool:
    """Whether an error body names `field` anywhere (either of Moneybird's error shapes)."""
    if isinstance(body, dict):
        return any(key == field or names_field(inner, field) for key, inner in body.items())
    return False


def number_of(invoice: Invoice) -> str | None:
    """The number a bookkeeper looks it up by: Moneybird's (once sent), or the reference we gave it."""
    return invoice.invoice_id if isinstance(invoice, SalesInvoice) else invoice.reference


@contextmanager
def failing_on_refusal(what: str) -> Iterator[None]:
    """Turn Moneybird's refusals into the entry's failure: refused access, or `what` rejected."""
    try:
        yield
    except MoneybirdConfigurationError as exc:
        raise BookingFailed(
            Message("Moneybird refused woobird's access: %(error)s", error=exc), kind="configuration"
        ) from exc
    except MoneybirdRejected as exc:
        raise BookingFailed(
            Message("Moneybird rejected %(what)s: %(error)s", what=Message(what), error=exc.message),
            kind="rejected",
        ) from exc


# ── the walk ─────────────────────────────────────────────────────────────────────────────────


# Given the contact Moneybird refused for a new document and its refusal, the contact to use instead.
ReplaceContact = Callable[[str, MoneybirdRejected], Awaitable[str]]


async def walk(
    services: Services,
    entry: ProgressRow,
    *,
    plan: BookingPlan,
    contact_id: str,
    replace_contact: ReplaceContact | None = None,
    sending: SalesInvoiceSending = MANUAL,
    pay: bool = True,
) -> Invoice:
    """Adopt or create, send, pay: the document for `plan`, paid, whatever earlier tries did.

    A contact archived or deleted in Moneybird refuses the create; `replace_contact` then names
    the contact to use, and the create goes once more (the refused one made nothing). An open
    invoice (app.booking.open_invoices) is sent as `sending` says and, with `pay=False`, left open.

    The steps between two intents (created, sent) are held and written with the next intent, or
    with whatever ends the walk: a crash in between leaves the row at the intent before, from which
    the next try adopts the document by reference (and finds it sent, or paid).
    """
    try:
        invoice = await _walk(
            services,
            entry,
            plan=plan,
            contact_id=contact_id,
            replace_contact=replace_contact,
            sending=sending,
            pay=pay,
        )
    except BaseException:
        await entry.flush()  # what was done is written down before the failure is
        raise
    await entry.flush()
    return invoice


async def _walk(
    services: Services,
    entry: ProgressRow,
    *,
    plan: BookingPlan,
    contact_id: str,
    replace_contact: ReplaceContact | None,
    sending: SalesInvoiceSending,
    pay: bool,
) -> Invoice:
    kind = invoice_operations(services.settings)
    moneybird = services.moneybird
    position = await entry.position()
    invoice = await _existing(services, entry, position, kind=kind, plan=plan, contact_id=contact_id)
    if invoice is None:
        invoice = await _create(
            services, entry, kind=kind, plan=plan, contact_id=contact_id, replace_contact=replace_contact
        )
    if invoice.total_price_incl_tax != plan.total:
        raise BookingFailed(
            Message(
                "Moneybird computed %(total)s %(currency)s for %(document)s %(id)s where the shop's figure "
                "is %(shop)s; it was left in Moneybird for inspection — nothing was booked as paid",
                total=money(invoice.total_price_incl_tax),
                currency=plan.currency,
                document=Message(entry.noun),
                id=invoice.id,
                shop=money(plan.total),
            ),
            kind="mismatch",
        )
    sent = await kind.send_draft(moneybird, invoice, sending)
    if sent is not None:
        invoice = sent
        entry.hold(
            event="sent",
            message=(
                Message("sent (Email) as %(number)s", number=number_of(invoice))
                if sending.delivery_method == "Email"
                else Message("sent (Manual) as %(number)s", number=number_of(invoice))
            ),
            step=entry.steps.sent,
            number=number_of(invoice),
        )
    if not pay:
        return invoice
    payment = await _pay(services, entry, position, kind=kind, plan=plan, invoice=invoice)
    if payment is not None and payment.price != invoice.total_unpaid:
        invoice = await kind.get(moneybird, invoice.id)
    return invoice


async def _existing(
    services: Services,
    entry: ProgressRow,
    position: Position,
    *,
    kind: InvoiceOperations,
    plan: BookingPlan,
    contact_id: str,
) -> Invoice | None:
    if position.invoice_id:
        return await kind.get(services.moneybird, position.invoice_id)
    if position.step != entry.steps.creating and not position.retried:
        return None
    # A create went out without an answer coming back (or an earlier try died): look first.
    found = await kind.find(services.moneybird, reference=plan.reference, contact_id=contact_id)
    if found is not None:
        await entry.write(
            event="adopted",
            message=Message(
                "adopted %(document)s %(id)s by reference", document=Message(entry.noun), id=found.id
            ),
            step=entry.steps.created,
            invoice_id=found.id,
        )
    return found


async def _create(
    services: Services,
    entry: ProgressRow,
    *,
    kind: InvoiceOperations,
    plan: BookingPlan,
    contact_id: str,
    replace_contact: ReplaceContact | None,
) -> Invoice:
    await entry.write(event=entry.event, message=N_("creating"), step=entry.steps.creating)
    try:
        invoice = await kind.create(services.moneybird, plan, contact_id=contact_id)
    except MoneybirdRejected as refused:
        if replace_contact is None or not refuses_contact(refused):
            raise
        replacement = await replace_contact(contact_id, refused)
        invoice = await kind.create(services.moneybird, plan, contact_id=replacement)
    entry.hold(
        event=entry.event,
        message=Message(
            "created %(made)s %(document)s %(id)s",
            made=Message(kind.made),
            document=Message(entry.noun),
            id=invoice.id,
        ),
        step=entry.steps.created,
        invoice_id=invoice.id,
        number=number_of(invoice),
    )
    return invoice


def is_open(invoice: Invoice) -> bool:
    """Something left to pay, in the direction of the total: money in for invoices, out for credits."""
    unpaid = invoice.total_unpaid
    return unpaid != 0 and (unpaid > 0) == (invoice.total_price_incl_tax > 0)


async def _pay(
    services: Services,
    entry: ProgressRow,
    position: Position,
    *,
    kind: InvoiceOperations,
    plan: BookingPlan,
    invoice: Invoice,
) -> Payment | None:
    """One payment of what is still open, intent first so a lost answer is looked up, not repeated."""
    if not is_open(invoice):
        if position.step == entry.steps.paying and invoice.payments:
            # The payment went through but its answer never came back: write down the one it made.
            made = invoice.payments[-1]
            await entry.write(
                event="adopted",
                message=Message("adopted payment %(id)s of %(amount)s", id=made.id, amount=money(made.price)),
                step=entry.steps.paid,
                payment_id=made.id,
            )
        return None
    await entry.write(event="payment", message=N_("registering"), step=entry.steps.paying)
    payment = await kind.pay(
        services.moneybird,
        invoice.id,
        PaymentCreate(
            payment_date=plan.payment_date,
            price=invoice.total_unpaid,
            transaction_identifier=plan.payment_reference or None,
        ),
    )
    await entry.write(
        event="payment",
        message=Message("paid %(amount)s (%(id)s)", amount=money(payment.price), id=payment.id),
        step=entry.steps.paid,
        payment_id=payment.id,
    )
    return payment
