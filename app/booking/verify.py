"""Verification: every invoice woobird booked is still in Moneybird, at the booked total, and paid.

Someone can change the books behind woobird's back — delete an invoice, edit its lines, remove its
payment. Verification reads back what the ledger says was booked, a month at a time:

    ledger      the month's booked invoices (orders paid in it, as in the month report), the credit
                invoices of its refunds and of its rebookings, each with the total booked
    list        Moneybird's invoices dated in that month, every state, 100 a page: one request per
                hundred invoices, not one per invoice
    look up     the few the list did not have (dated otherwise, or gone) by id, 100 a request
    compare     gone → `invoice_deleted`; another total → `invoice_changed`; not paid →
                `invoice_reopened`; each recorded once (app.booking.findings), alerted once, and
                resolved by the verification that finds the invoice well again

Everything is read before anything is written, so a lost answer or a 429 half way records nothing
and the next try starts over; an invoice is never called deleted because a page did not arrive.
Every request takes a slot of the shared rate limiter like any other.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import structlog
from arq import Retry, cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function, func
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app import schema
from app.booking import ledger
from app.booking.findings import note, resolve
from app.booking.reconcile import spread_connection_jobs
from app.constants import JOB_VERIFY, JOB_VERIFY_CONNECTION
from app.i18n import N_, Message
from app.money import money
from app.moneybird.client import InvoiceKind, Standing
from app.report import REPORT_TIMEZONE, month_bounds
from app.retry import TryAgainLater, retry_delay
from app.runtime import Services, services_of, when_set_up
from app.schema import (
    Finding,
    FindingKind,
    FindingState,
    OrderRecord,
    OrderState,
    Rebooking,
    RebookState,
    RefundRecord,
    RefundState,
)
from app.settings_live import LiveSettings

log = structlog.get_logger("woobird.verify")

DRIFT_KINDS = (FindingKind.INVOICE_DELETED, FindingKind.INVOICE_CHANGED, FindingKind.INVOICE_REOPENED)
# A month of more than 10 000 invoices is read in part; the rest are looked up by id.
MAX_PAGES_PER_MONTH = 100
# The cron wakes every hour and verifies when VERIFY_INTERVAL_HOURS have passed since the last
# verification that finished: a worker restarted at the wrong moment delays it an hour, not a day.
VERIFY_MINUTE = 17
VERIFY_MAX_TRIES = 5
VERIFY_LAST_SUCCESS = "verify_last_success"
VERIFY_LAST_ERROR = "verify_last_error"
# The other connections' looks are spread over the hour until the cron's next one.
VERIFY_SPREAD_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Booked:
    """One document the ledger says woobird booked, and the total it booked."""

    invoice_id: str
    number: str | None
    total: Decimal
    order_id: int
    order_number: str
    what: str  # "invoice", "credit invoice of refund 77", "credit invoice of the rebooking"
    refund_id: int | None = None

    @property
    def name(self) -> str:
        number = self.number or self.invoice_id
        if self.what != "invoice":
            return Message(
                "credit invoice %(number)s of order #%(order)s", number=number, order=self.order_number
            )
        return Message("invoice %(number)s of order #%(order)s", number=number, order=self.order_number)


@dataclass(frozen=True, slots=True)
class Drift:
    """A booked document that is no longer as it was booked."""

    kind: FindingKind
    booked: Booked
    held: Standing | None  # None: gone from Moneybird
    message: str
    news: bool = False


@dataclass
class MonthVerification:
    month: str
    start: date
    end: date
    checked: int = 0
    credit_invoices: int = 0
    requests: int = 0
    well: int = 0
    drifts: list[Drift] = field(default_factory=list)
    resolved: int = 0
    booked_total: Decimal = Decimal("0.00")

    @property
    def invoices(self) -> int:
        return self.checked - self.credit_invoices

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "checked": self.checked,
            "requests": self.requests,
            "drifts": {kind.value: sum(1 for d in self.drifts if d.kind == kind) for kind in DRIFT_KINDS},
            "resolved": self.resolved,
        }


def month_days(month: str) -> tuple[date, date]:
    """The first and last calendar day of `YYYY-MM`; ValueError names the expected form."""
    start, end = month_bounds(month)
    first = start.astimezone(REPORT_TIMEZONE).date()
    return first, end.astimezone(REPORT_TIMEZONE).date() - timedelta(days=1)


def recent_months(count: int, *, now: datetime | None = None) -> list[str]:
    """This month and the `count - 1` before it, newest first, in the report's time zone."""
    today = (now or schema.utcnow()).astimezone(REPORT_TIMEZONE).date()
    year, month0 = today.year, today.month - 1
    months = []
    for back in range(max(1, count)):
        index = year * 12 + month0 - back
        months.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
    return months


# ── the ledger's side ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class BookedSource:
    """Where the ledger keeps one kind of document woobird books, as data: its table, the columns
    holding the Moneybird document, the states in which it stands booked, and how it is named."""

    table: type[OrderRecord] | type[RefundRecord] | type[Rebooking]
    order_id: InstrumentedAttribute[int]
    invoice_id: InstrumentedAttribute[str | None]
    number: InstrumentedAttribute[str | None]
    total: InstrumentedAttribute[Decimal | None]
    state: InstrumentedAttribute[str]
    booked_states: tuple[str, ...]
    order_by: tuple[InstrumentedAttribute[Any], ...]
    in_month: Callable[[datetime, datetime], ColumnElement[bool]]
    what: Callable[[Any], str]
    refund_id: Callable[[Any], int | None] = lambda row: None


def _order_in_month(start: datetime, end: datetime) -> ColumnElement[bool]:
    """Orders paid in the month (the month report's orders), or created in it when never paid."""
    paid_in = and_(OrderRecord.date_paid >= start, OrderRecord.date_paid < end)
    created_in = and_(
        OrderRecord.date_paid.is_(None), OrderRecord.created_at >= start, OrderRecord.created_at < end
    )
    return or_(paid_in, created_in)


BOOKED_SOURCES = (
    BookedSource(
        table=OrderRecord,
        order_id=OrderRecord.order_id,
        invoice_id=OrderRecord.invoice_id,
        number=OrderRecord.invoice_number,
        total=OrderRecord.invoice_total,
        state=OrderRecord.state,
        booked_states=(OrderState.BOOKED.value,),
        order_by=(OrderRecord.order_id,),
        in_month=_order_in_month,
        what=lambda row: "invoice",
    ),
    BookedSource(
        table=RefundRecord,
        order_id=RefundRecord.order_id,
        invoice_id=RefundRecord.credit_invoice_id,
        number=RefundRecord.credit_invoice_number,
        total=RefundRecord.credit_total,
        state=RefundRecord.state,
        booked_states=(RefundState.BOOKED.value, RefundState.DELETED.value),
        order_by=(RefundRecord.refund_id,),
        in_month=lambda start, end: and_(RefundRecord.created_at >= start, RefundRecord.created_at < end),
        what=lambda row: Message("credit invoice of refund %(refund)s", refund=row.refund_id),
        refund_id=lambda row: int(row.refund_id),
    ),
    BookedSource(
        table=Rebooking,
        order_id=Rebooking.order_id,
        invoice_id=Rebooking.credit_invoice_id,
        number=Rebooking.credit_invoice_number,
        total=Rebooking.credit_total,
        state=Rebooking.state,
        booked_states=(RebookState.BOOKING.value, RebookState.DONE.value),
        order_by=(Rebooking.order_id, Rebooking.version),
        in_month=lambda start, end: and_(Rebooking.created_at >= start, Rebooking.created_at < end),
        what=lambda row: N_("credit invoice of the rebooking"),
    ),
)


async def booked_in(services: Services, month: str) -> list[Booked]:
    """What woobird booked for the month: the invoices of orders paid in it (the month report's
    orders), and the credit invoices of refunds and rebookings made in it."""
    start, end = month_bounds(month)
    found: list[Booked] = []
    async with services.sessions() as session:
        for source in BOOKED_SOURCES:
            query = select(source.table, OrderRecord.order_number)
            if source.table is not OrderRecord:
                query = query.join(OrderRecord, OrderRecord.order_id == source.order_id)
            query = query.where(
                source.in_month(start, end),
                source.state.in_(source.booked_states),
                source.invoice_id.is_not(None),
            ).order_by(*source.order_by)
            for row, order_number in (await session.execute(query)).all():
                invoice_id = getattr(row, source.invoice_id.key)
                total = getattr(row, source.total.key)
                if invoice_id and total is not None:
                    found.append(
                        Booked(
                            invoice_id=invoice_id,
                            number=getattr(row, source.number.key),
                            total=total,
                            order_id=getattr(row, source.order_id.key),
                            order_number=order_number,
                            what=source.what(row),
                            refund_id=source.refund_id(row),
                        )
                    )
    return found


# ── Moneybird's side ─────────────────────────────────────────────────────────────────────────


async def held_now(
    services: Services, booked: Sequence[Booked], *, start: date, end: date
) -> dict[str, Standing]:
    """The booked documents Moneybird still has, by id: the month's list, then the missing by id."""
    kind: InvoiceKind = services.settings.invoice_kind
    listed, _ = await services.moneybird.invoices_dated(
        kind, start=start, end=end, max_pages=MAX_PAGES_PER_MONTH
    )
    wanted = {item.invoice_id for item in booked}
    held = {document.id: document for document in listed if document.id in wanted}
    # Rebooked invoices are dated the day of the correction, a refund the day it was made, and
    # someone may have moved an invoice's date: not in this month's list is not yet gone.
    missing = sorted(wanted - held.keys())
    if missing:
        for document in await services.moneybird.invoices_by_id(kind, missing):
            if document.id in wanted:
                held[document.id] = document
    return held


# ── comparing ────────────────────────────────────────────────────────────────────────────────


def compare(booked: Booked, held: Standing | None) -> list[Drift]:
    """How a booked document differs from what Moneybird holds now (nothing: it is well)."""
    if held is None:
        return [
            Drift(
                FindingKind.INVOICE_DELETED,
                booked,
                None,
                Message(
                    "%(document)s (%(what)s, %(total)s) is no longer in Moneybird: it was deleted there, so "
                    "the books miss it; put it back in Moneybird, or mark this done once the books are right",
                    document=booked.name,
                    what=booked.what,
                    total=money(booked.total),
                ),
            )
        ]
    drifts = []
    if held.total != booked.total:
        drifts.append(
            Drift(
                FindingKind.INVOICE_CHANGED,
                booked,
                held,
                Message(
                    "%(document)s now totals %(total)s in Moneybird, booked as %(booked)s "
                    "(difference %(difference)s)",
                    document=booked.name,
                    total=money(held.total),
                    booked=money(booked.total),
                    difference=money(held.total - booked.total),
                ),
            )
        )
    if not held.paid:
        drifts.append(
            Drift(
                FindingKind.INVOICE_REOPENED,
                booked,
                held,
                Message(
                    "%(document)s is no longer paid in Moneybird (state %(state)s, %(unpaid)s unpaid), "
                    "though the customer paid in the shop: a payment was removed or the total changed",
                    document=booked.name,
                    state=held.state,
                    unpaid=money(held.unpaid),
                ),
            )
        )
    return drifts


def subject_of(invoice_id: str) -> str:
    return f"invoice:{invoice_id}"


async def verify_month(services: Services, month: str) -> MonthVerification:
    """Verify one month `YYYY-MM` (ValueError when malformed); TryAgainLater when Moneybird is
    away or busy, before anything was written."""
    start, end = month_days(month)
    result = MonthVerification(month=month.strip(), start=start, end=end)
    booked = await booked_in(services, month)
    result.checked = len(booked)
    result.credit_invoices = sum(1 for item in booked if item.what != "invoice")
    result.booked_total = sum((item.total for item in booked), Decimal("0.00"))
    result.resolved += await _resolve_unclaimed(services)
    if not booked:
        return result  # nothing to read back: no request at all
    before = services.moneybird.calls_total
    try:
        held = await held_now(services, booked, start=start, end=end)
    finally:
        result.requests = services.moneybird.calls_total - before
    for item in booked:
        drifts = compare(item, held.get(item.invoice_id))
        result.drifts += [await _record(services, drift) for drift in drifts]
        found = {drift.kind for drift in drifts}
        if not found:
            result.well += 1
        for kind in DRIFT_KINDS:
            if kind not in found:
                result.resolved += await resolve(
                    services,
                    kind=kind,
                    subject=subject_of(item.invoice_id),
                    resolution=f"verified: {item.name} is in Moneybird as booked again",
                )
    log.info("verified", **result.as_dict())
    return result


async def _resolve_unclaimed(services: Services) -> int:
    """Resolve findings about documents the ledger no longer says woobird booked (a rebooking
    replaced the invoice): nobody can make those as booked again."""
    kinds = [kind.value for kind in DRIFT_KINDS]
    async with services.sessions() as session:
        open_ = (
            await session.execute(
                select(Finding.kind, Finding.subject, Finding.invoice_id).where(
                    Finding.kind.in_(kinds), Finding.state == FindingState.OPEN.value
                )
            )
        ).all()
        if not open_:
            return 0
        ids = [row.invoice_id for row in open_ if row.invoice_id]
        claimed: set[str] = set()
        for column in (OrderRecord.invoice_id, RefundRecord.credit_invoice_id, Rebooking.credit_invoice_id):
            claimed |= {
                str(v) for v in (await session.execute(select(column).where(column.in_(ids)))).scalars()
            }
    resolved = 0
    for kind, subject, invoice_id in open_:
        if invoice_id and invoice_id not in claimed:
            resolved += await resolve(
                services,
                kind=FindingKind(kind),
                subject=subject,
                resolution="woobird no longer books this invoice: its order was booked again",
            )
    return resolved


async def _record(services: Services, drift: Drift) -> Drift:
    news = await note(
        services,
        kind=drift.kind,
        subject=subject_of(drift.booked.invoice_id),
        message=drift.message,
        order_id=drift.booked.order_id,
        refund_id=drift.booked.refund_id,
        invoice_id=drift.booked.invoice_id,
    )
    return Drift(drift.kind, drift.booked, drift.held, drift.message, news=news)


# ── the periodic verification ────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class LastVerification:
    """When verification last finished, and why the last try failed if it failed since."""

    on: bool  # VERIFY_INTERVAL_HOURS > 0
    finished: datetime | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        finished = self.finished.isoformat() if self.finished else None
        return {"on": self.on, "last_finished": finished, "last_error": self.error}


async def last_verification(session: AsyncSession, *, interval_hours: int) -> LastVerification:
    finished_text = await ledger.get_state(session, VERIFY_LAST_SUCCESS)
    finished = datetime.fromisoformat(finished_text) if finished_text else None
    error_text = await ledger.get_state(session, VERIFY_LAST_ERROR)
    error = None
    if error_text:
        failed_text, _, error = error_text.partition(" ")
        with contextlib.suppress(ValueError):  # an error older than the success is over
            if finished is not None and datetime.fromisoformat(failed_text) <= finished:
                error = None
    return LastVerification(on=interval_hours > 0, finished=finished, error=error or None)


async def verification_due(services: Services, *, now: datetime | None = None) -> bool:
    hours = services.settings.verify_interval_hours
    if hours <= 0:
        return False
    async with services.sessions() as session:
        last = await ledger.get_state(session, VERIFY_LAST_SUCCESS)
    if last is None:
        return True
    moment = datetime.fromisoformat(last)
    # A few minutes' slack: the hourly cron finds yesterday's run 23 h 59 min ago, not 24 h.
    return (now or schema.utcnow()) - moment >= timedelta(hours=hours) - timedelta(minutes=5)


async def verify_recent(services: Services, *, now: datetime | None = None) -> list[MonthVerification]:
    """Verify the last VERIFY_MONTHS months and write the success down."""
    months = recent_months(services.settings.verify_months, now=now)
    results = [await verify_month(services, month) for month in months]
    async with services.sessions() as session, session.begin():
        await ledger.set_state(session, VERIFY_LAST_SUCCESS, (now or schema.utcnow()).isoformat())
    return results


async def verification_job(ctx: dict[str, Any]) -> dict[str, Any]:
    """The arq cron body: verify when due; a passing failure is retried by `app.retry`'s rule."""
    services = services_of(ctx)
    if not await verification_due(services):
        return {"ok": True, "skipped": "not due"}
    job_try = int(ctx.get("job_try", 1))
    try:
        results = await verify_recent(services)
    except TryAgainLater as exc:
        async with services.sessions() as session, session.begin():
            await ledger.set_state(session, VERIFY_LAST_ERROR, f"{schema.utcnow().isoformat()} {exc}")
        if job_try >= VERIFY_MAX_TRIES:
            log.error("verification gave up until its next turn", job_try=job_try, error=str(exc))
            return {"ok": False, "error": str(exc)}
        delay = retry_delay(job_try=job_try, error=exc, now=time.time(), scale=services.retry_scale)
        log.warning("verification will retry", job_try=job_try, in_seconds=round(delay, 1), error=str(exc))
        raise Retry(defer=max(0.01, delay)) from exc
    return {"ok": True, "months": [result.as_dict() for result in results]}


async def verify_every_connection(ctx: dict[str, Any]) -> Any:
    """The hourly cron's body: queue the other booking connections' looks, spread over the hour
    (each verifies when its own verification is due, and fails or retries on its own), then look
    at connection 1's."""
    live: LiveSettings | None = ctx.get("live_settings")
    if live is not None and int(ctx.get("job_try", 1)) == 1:  # a retry of connection 1's queues none again
        try:
            await spread_connection_jobs(
                ctx["redis"],
                live.sessions,
                function=JOB_VERIFY_CONNECTION,
                slot_name="verify",
                interval_seconds=VERIFY_SPREAD_SECONDS,
                now=time.time(),
            )
        except Exception as exc:  # the ledger away: connection 1's look still runs (and fails alone)
            log.error("could not queue the other connections' verification", error=f"{type(exc).__name__}")
    return await when_set_up(verification_job, wait_seconds=None)(ctx)


def verification_connection_function() -> Function:
    """The job that verifies a connection other than 1 (queued by `verify_every_connection`)."""
    return func(
        cast(WorkerCoroutine, when_set_up(verification_job, wait_seconds=None)),
        name=JOB_VERIFY_CONNECTION,
        max_tries=VERIFY_MAX_TRIES,
        keep_result=0,
    )


def verification_cron(*, timeout_seconds: int) -> list[CronJob]:
    """The worker's hourly look whether a verification is due (`workers.settings`)."""
    # unique: every worker schedules the slot, one runs it (arq's cron job id is per slot).
    return [
        cron(
            cast(WorkerCoroutine, verify_every_connection),
            name=JOB_VERIFY,
            minute={VERIFY_MINUTE},
            second=0,
            unique=True,
            timeout=timeout_seconds,
            max_tries=VERIFY_MAX_TRIES,
        )
    ]
