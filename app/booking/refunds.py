"""Crediting refunds: every WooCommerce refund of a booked order becomes one settled credit invoice.

    queue      each `order.updated` of a booked order lists its refunds; a new one gets a ledger
               row (waiting while its order is not booked) and a job keyed by the refund id
    plan       negative lines for exactly the refunded amount (`app.invoicing.refund_plan`)
    credit     the booking walk (app.booking.walk): adopt or create the credit invoice, send it,
               and settle it with one negative payment of its total on the refund date — the
               money went back to the customer; the original invoice stays paid
    deleted    a refund that disappears from the shop after it was credited is reported, not undone

Like invoices, every step writes its intent or result to the ledger before the next, so a crash
anywhere resumes where it stopped and adopts the credit invoice Moneybird already made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import schema
from app.alerts import alert
from app.booking import ledger
from app.booking.contacts import order_contact, replace_contact
from app.booking.shop_notes import queue_shop_note
from app.booking.walk import (
    CREDIT_STEPS,
    BookingFailed,
    Invoice,
    LedgerProgress,
    Position,
    failing_on_refusal,
    invoice_operations,
    number_of,
    walk,
    write_down,
)
from app.connection_scope import connection_of, connection_of_sessions
from app.constants import REFUND_LOCK_PREFIX, REQUEUE_BATCH
from app.db import transaction
from app.i18n import N_, WORDS, Message
from app.invoicing.refund_plan import CreditPlan, CreditRefused, plan_credit
from app.jobs import exclusively, retry_transient
from app.metrics import JOBS
from app.money import money
from app.moneybird.errors import MoneybirdRejected
from app.queue import enqueue_each, refund_job
from app.runtime import Services, Stores, services_of
from app.schema import OrderRecord, OrderState, RefundRecord, RefundState, RefundStep
from app.woocommerce.errors import WooCommerceNotFound
from app.woocommerce.models import Order, Refund

log = structlog.get_logger("woobird.refunds")

# A refund that is still to be credited; `failed` ones wait for a person (`woobird retry`).
OPEN_STATES = (RefundState.WAITING.value, RefundState.QUEUED.value)


# ── queueing ─────────────────────────────────────────────────────────────────────────────────


async def queue_refunds(services: Services, *, order: Order) -> int:
    """Record and queue the refunds of `order`; note those that vanished. Returns how many were queued.

    Called for every version of an order the booking job sees, so it must be cheap when nothing
    changed and harmless when it runs twice at once: rows are inserted with ON CONFLICT DO
    NOTHING and jobs are keyed by the refund id.
    """
    async with services.sessions() as session:
        order_record = await ledger.get_order(session, order.id)
        known = await _refunds_of(session, order.id)
    if order_record is None:
        return 0  # not in the ledger yet: its booking job calls back here once it is
    active = [r for r in known if r.state != RefundState.DELETED]
    if not order.refunds and not active:
        return 0
    try:
        # Only the refunds endpoint carries amounts and lines; it is also the proof a refund is gone.
        refunds = await services.shop.get_refunds(order.id)
    except WooCommerceNotFound:
        log.warning("order vanished while its refunds were read", order_id=order.id)
        return 0
    booked = order_record.state == OrderState.BOOKED and bool(order_record.invoice_id)
    async with transaction(services.sessions) as session:
        for refund in refunds:
            await _insert_refund(session, order_id=order.id, refund=refund, booked=booked)
        if booked:
            await session.execute(
                update(RefundRecord)
                .where(RefundRecord.order_id == order.id, RefundRecord.state == RefundState.WAITING.value)
                .values(state=RefundState.QUEUED.value, updated_at=schema.utcnow())
            )
    present = {refund.id for refund in refunds}
    for record in active:
        if record.refund_id not in present:
            await _refund_deleted(services, record)
    return await _enqueue_open(services, order_id=order.id, reason="order updated")


async def requeue_refunds(
    services: Stores, *, reason: str = "reconcile", defer_seconds: float = 0, copy_tag: str = ""
) -> int:
    """For the reconciliation poll: queue again the refunds of booked orders that wait without a job.

    A Redis flush, or a refund job that ran while its order was being booked, leaves a row that
    no job will pick up; arq drops the copy when the job still exists. After Redis lost its data
    (app.booking.redis_marker) the copies start `defer_seconds` later, once the workers hold their
    locks again.
    """
    query = (
        select(RefundRecord.refund_id, RefundRecord.order_id, RefundRecord.state)
        .join(OrderRecord, OrderRecord.order_id == RefundRecord.order_id)
        .where(RefundRecord.state.in_(OPEN_STATES), OrderRecord.state == OrderState.BOOKED.value)
        .order_by(RefundRecord.updated_at)
        .limit(REQUEUE_BATCH)
    )
    async with transaction(services.sessions) as session:
        rows = [(int(row[0]), int(row[1]), str(row[2])) for row in (await session.execute(query)).all()]
        waiting = [refund_id for refund_id, _, state in rows if state == RefundState.WAITING.value]
        if waiting:
            await session.execute(
                update(RefundRecord)
                .where(RefundRecord.refund_id.in_(waiting))
                .values(state=RefundState.QUEUED.value, updated_at=schema.utcnow())
            )
    connection_id = connection_of_sessions(services.sessions)
    jobs = (
        refund_job(order_id=order_id, refund_id=refund_id, reason=reason, connection_id=connection_id)
        for refund_id, order_id, _ in rows
    )
    return len(await enqueue_each(services.redis, jobs, defer_seconds=defer_seconds, copy_tag=copy_tag))


async def _refunds_of(session: AsyncSession, order_id: int) -> Sequence[RefundRecord]:
    query = select(RefundRecord).where(RefundRecord.order_id == order_id).order_by(RefundRecord.refund_id)
    return (await session.execute(query)).scalars().all()


async def _insert_refund(session: AsyncSession, *, order_id: int, refund: Refund, booked: bool) -> None:
    insert = ledger._insert_for(session)
    now = schema.utcnow()
    state = RefundState.QUEUED if booked else RefundState.WAITING
    statement = insert(RefundRecord.__table__).values(
        connection_id=connection_of(session),
        refund_id=refund.id,
        order_id=order_id,
        state=state.value,
        amount=refund.amount,
        reason=(refund.reason or "")[:2000],
        created_at=now,
        updated_at=now,
    )
    result = await session.execute(
        statement.on_conflict_do_nothing(index_elements=["connection_id", "refund_id"]).returning(
            RefundRecord.__table__.c.refund_id
        )
    )
    if result.first() is not None:
        what = "queued" if booked else "waiting for the order to be booked"
        await ledger.add_event(
            session,
            order_id=order_id,
            refund_id=refund.id,
            step="refund",
            message=Message("refund of %(amount)s: %(what)s", amount=money(refund.amount), what=what),
        )


async def _enqueue_open(services: Services, *, order_id: int, reason: str) -> int:
    async with services.sessions() as session:
        query = select(RefundRecord.refund_id).where(
            RefundRecord.order_id == order_id, RefundRecord.state == RefundState.QUEUED.value
        )
        open_ids = (await session.execute(query)).scalars().all()
    jobs = (
        refund_job(
            order_id=order_id, refund_id=refund_id, reason=reason, connection_id=services.connection_id
        )
        for refund_id in open_ids
    )
    return len(await enqueue_each(services.redis, jobs))


async def _refund_deleted(services: Services, record: RefundRecord) -> None:
    """A refund gone from the shop: harmless before crediting, a person's job after it."""
    credited = record.credit_invoice_id is not None or record.step is not None
    if credited:
        credit = record.credit_invoice_number or record.credit_invoice_id or "(check Moneybird)"
        message = Message(
            "refund %(refund)s of order %(order)s was deleted in WooCommerce after woobird credited it "
            "(credit invoice %(credit)s); the credit invoice stays — if the refund was a mistake, reverse it "
            "in Moneybird",
            refund=record.refund_id,
            order=record.order_id,
            credit=credit,
        )
    else:
        message = Message(
            "refund %(refund)s was deleted in WooCommerce before it was credited; nothing to undo",
            refund=record.refund_id,
        )
    async with transaction(services.sessions) as session:
        await session.execute(
            update(RefundRecord)
            .where(RefundRecord.refund_id == record.refund_id)
            .values(state=RefundState.DELETED.value, error=message, updated_at=schema.utcnow())
        )
        await ledger.add_event(
            session,
            order_id=record.order_id,
            refund_id=record.refund_id,
            step="refund_deleted",
            message=message,
        )
    log.warning(
        "refund deleted in the shop", order_id=record.order_id, refund_id=record.refund_id, credited=credited
    )
    if credited:
        await alert(services, cause=f"refund-deleted:{record.refund_id}", message=message)


# ── the job ──────────────────────────────────────────────────────────────────────────────────


async def _gave_up(services: Services, args: tuple[Any, ...], message: str) -> None:
    # Giving up is the refund's failure, not its (booked) order's.
    failure = BookingFailed(message, kind="exhausted")
    await _fail(services, order_id=int(args[0]), refund_id=int(args[1]), failure=failure)


@retry_transient("refund", give_up=_gave_up)
async def book_refund_job(ctx: dict[str, Any], order_id: int, refund_id: int, reason: str = "webhook") -> str:
    services = services_of(ctx)
    async with exclusively(services, f"{REFUND_LOCK_PREFIX}{refund_id}"):
        return await book_refund(services, order_id=order_id, refund_id=refund_id, reason=reason)


async def book_refund(services: Services, *, order_id: int, refund_id: int, reason: str) -> str:
    """Credit one refund; returns the ledger state it ends in."""
    started = time.perf_counter()
    record = await _load(services, refund_id)
    if record is not None and record.state in (RefundState.BOOKED, RefundState.DELETED):
        return record.state
    order_record = await _order_record(services, order_id)
    if order_record is None:
        log.info("refund waits: its order is not in the ledger", order_id=order_id, refund_id=refund_id)
        return RefundState.WAITING.value
    if order_record.state != OrderState.BOOKED or not order_record.invoice_id:
        return await _wait(services, order_id=order_id, refund_id=refund_id, record=record)
    try:
        order = await services.shop.get_order(order_id)
        refunds = await services.shop.get_refunds(order_id)
    except WooCommerceNotFound:
        refunds, order = [], None
    refund = next((r for r in refunds if r.id == refund_id), None)
    if refund is None or order is None:
        if record is not None:
            await _refund_deleted(services, record)
            return RefundState.DELETED.value
        log.info("refund no longer exists in the shop", order_id=order_id, refund_id=refund_id)
        return RefundState.DELETED.value
    record = await _start(services, order_id=order_id, refund=refund, reason=reason)
    try:
        plan = await _plan(services, refund=refund, order=order)
        credit = await _credit(services, record=record, order_record=order_record, order=order, plan=plan)
    except BookingFailed as failure:
        await _fail(services, order_id=order_id, refund_id=refund_id, failure=failure)
        return RefundState.FAILED.value
    state = await _booked(services, plan=plan, credit=credit, against=order_record)
    JOBS.labels(kind="refund", outcome="booked", connection=str(services.connection_id)).inc()
    log.info(
        "refund credited",
        order_id=order_id,
        refund_id=refund_id,
        credit=number_of(credit),
        credit_id=credit.id,
        total=money(credit.total_price_incl_tax),
        seconds=round(time.perf_counter() - started, 2),
    )
    return state


async def _load(services: Services, refund_id: int) -> RefundRecord | None:
    async with services.sessions() as session:
        query = select(RefundRecord).where(RefundRecord.refund_id == refund_id)
        return (await session.execute(query)).scalar_one_or_none()


async def _order_record(services: Services, order_id: int) -> OrderRecord | None:
    async with services.sessions() as session:
        return await ledger.get_order(session, order_id)


async def _wait(services: Services, *, order_id: int, refund_id: int, record: RefundRecord | None) -> str:
    """Never a credit without its invoice: the order's booking queues this refund again."""
    if record is not None and record.state != RefundState.WAITING:
        await write_down(
            services,
            order_id=order_id,
            refund_id=refund_id,
            event="refund",
            message=N_("waiting for the order to be booked"),
            state=RefundState.WAITING.value,
        )
    log.info("refund waits for its order to be booked", order_id=order_id, refund_id=refund_id)
    return RefundState.WAITING.value


async def _start(services: Services, *, order_id: int, refund: Refund, reason: str) -> RefundRecord:
    async with transaction(services.sessions) as session:
        await _insert_refund(session, order_id=order_id, refund=refund, booked=True)
        await session.execute(
            update(RefundRecord)
            .where(RefundRecord.refund_id == refund.id)
            .values(
                state=RefundState.QUEUED.value,
                amount=refund.amount,
                reason=(refund.reason or "")[:2000],
                updated_at=schema.utcnow(),
            )
        )
        await ledger.add_event(
            session,
            order_id=order_id,
            refund_id=refund.id,
            step="started",
            message=Message("crediting (%(reason)s)", reason=Message(reason)),
        )
    record = await _load(services, refund.id)
    assert record is not None
    return record


async def _plan(services: Services, *, refund: Refund, order: Order) -> CreditPlan:
    reference = await services.reference.get(services.moneybird)
    try:
        return plan_credit(refund, order=order, reference=reference, options=services.plan_options())
    except CreditRefused as exc:
        raise BookingFailed(
            f"refund {refund.id} of order #{order.display_number} was not credited: {exc}", kind="refused"
        ) from exc


async def _credit(
    services: Services, *, record: RefundRecord, order_record: OrderRecord, order: Order, plan: CreditPlan
) -> Invoice:
    async def replace(gone: str, refused: MoneybirdRejected) -> str:
        customer = order_contact(order, settings=services.settings)
        return await replace_contact(
            services, order_id=order.id, contact=customer, gone=gone, refused=refused
        )

    with failing_on_refusal(N_("the credit invoice")):
        contact_id = await _contact_id(services, order_record)
        entry = CreditProgress(services, order_id=record.order_id, refund_id=record.refund_id)
        return await walk(services, entry, plan=plan, contact_id=contact_id, replace_contact=replace)


class CreditProgress(LedgerProgress):
    """The booking walk's view of a refund's ledger row: the refund's credit invoice and its steps."""

    noun = N_("credit invoice")
    event = "credit"
    steps = CREDIT_STEPS
    columns = ("credit_invoice_id", "credit_invoice_number", "payment_id")

    async def position(self) -> Position:
        assert self.refund_id is not None
        record = await _load(self.services, self.refund_id)
        assert record is not None
        return Position(step=record.step, invoice_id=record.credit_invoice_id)


async def _contact_id(services: Services, order_record: OrderRecord) -> str:
    """The credit goes to whoever the invoice went to."""
    if order_record.contact_id:
        return order_record.contact_id
    assert order_record.invoice_id is not None
    original = await invoice_operations(services.settings).get(services.moneybird, order_record.invoice_id)
    if original.contact_id is None:
        raise BookingFailed(f"invoice {order_record.invoice_id} has no contact to credit", kind="rejected")
    return original.contact_id


# ── outcome ──────────────────────────────────────────────────────────────────────────────────


async def _booked(services: Services, *, plan: CreditPlan, credit: Invoice, against: OrderRecord) -> str:
    how = "through the payment method" if plan.refunded_payment else "by hand"
    message = (
        f"credited as {number_of(credit)} against invoice {against.invoice_number or against.invoice_id}, "
        f"total {money(credit.total_price_incl_tax)}; refunded {how}, "
        f"settled as a payment of {money(credit.total_price_incl_tax)} on {plan.invoice_date}"
    )
    if plan.spread:
        message += "; amount-only refund spread over the VAT rates: " + ", ".join(
            f"{plan.tax_rates[rate_id].name} {money(part)}" for rate_id, part in plan.spread.items()
        )
    values = {
        "step": RefundStep.PAID.value,
        "credit_invoice_id": credit.id,
        "credit_invoice_number": number_of(credit),
        "credit_total": credit.total_price_incl_tax,
        "credited_invoice_id": against.invoice_id,
        "error": None,
        "booked_at": schema.utcnow(),
        "updated_at": schema.utcnow(),
    }
    async with transaction(services.sessions) as session:
        # Only a refund still open becomes booked: one deleted in the shop meanwhile stays deleted.
        result = await session.execute(
            update(RefundRecord)
            .where(RefundRecord.refund_id == plan.refund_id, RefundRecord.state != RefundState.DELETED.value)
            .values(state=RefundState.BOOKED.value, **values)
        )
        booked = result.rowcount == 1  # type: ignore[attr-defined]
        if not booked:
            await session.execute(
                update(RefundRecord).where(RefundRecord.refund_id == plan.refund_id).values(**values)
            )
        await ledger.add_event(
            session,
            order_id=plan.order_id,
            refund_id=plan.refund_id,
            step="booked" if booked else "refund_deleted",
            message=message if booked else f"{message}, but the refund was deleted in WooCommerce meanwhile",
        )
    if not booked:
        await alert(
            services,
            cause=f"refund-deleted:{plan.refund_id}",
            message=Message(
                "refund %(refund)s of order #%(order)s was deleted in WooCommerce while woobird credited it "
                "as %(credit)s; reverse the credit invoice in Moneybird if it was a mistake",
                refund=plan.refund_id,
                order=plan.order_number,
                credit=number_of(credit),
            ),
        )
        return RefundState.DELETED.value
    await queue_shop_note(
        services,
        order_id=plan.order_id,
        kind="refund_credit",
        document_id=credit.id,
        number=number_of(credit) or credit.id,
        total=money(credit.total_price_incl_tax),
        currency=credit.currency or against.currency,
    )
    return RefundState.BOOKED.value


async def _fail(services: Services, *, order_id: int, refund_id: int, failure: BookingFailed) -> None:
    await write_down(
        services,
        order_id=order_id,
        refund_id=refund_id,
        event="failed",
        message=str(failure),
        state=RefundState.FAILED.value,
        error=str(failure),
    )
    if failure.kind != "exhausted":  # a job that ran out of tries counts as gave_up, once
        JOBS.labels(kind="refund", outcome="failed", connection=str(services.connection_id)).inc()
    log.error("refund failed", order_id=order_id, refund_id=refund_id, kind=failure.kind, reason=str(failure))
    await alert(
        services,
        cause=f"refund-failed:{refund_id}",
        message=Message(
            "refund %(refund)s of order %(order)s could not be credited in Moneybird (%(kind)s): %(reason)s",
            refund=refund_id,
            order=order_id,
            kind=Message(WORDS.get(failure.kind, failure.kind)),
            reason=str(failure),
        ),
    )
