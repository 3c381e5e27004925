"""The history import: book the orders paid in a date range, through the same queue as a webhook.

Moneybird allows 150 requests per 5 minutes and an order costs four requests for a new customer,
three for a returning one (one fewer each for external invoices), so 10 000 orders take hours.
The backfill therefore keeps only a window's worth of its jobs in the queue at a time (live
orders never wait behind the whole history), shows how far it is with an ETA computed from those
figures and the rate limit (requests ÷ limit), and can be stopped and started again: the ledger
and the deterministic job ids make a second run skip what is booked and not queue twice what is
queued.

`--dry-run` plans every order with the real `plan_invoice` and the administration's reference
data, prints totals and refusals, and books nothing.

A run may also stop when `out_of_time()` says so (the worker's slices, app/setup/task_jobs.py): it
then returns its report unfinished, with a cursor (`BackfillCursor`) to hand back as `resume=` —
the next call goes on from there and ends with the report one uninterrupted run would have made.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import select

from app.booking import ledger
from app.booking.intake import listed_statuses, record_and_enqueue
from app.constants import BACKFILL_CALLS_PER_ORDER
from app.db import transaction
from app.i18n import N_
from app.invoicing.plan import PlanOptions, PlanRefused, plan_invoice
from app.moneybird.client import InvoiceKind
from app.runtime import Services
from app.schema import ContactRecord, OrderRecord, OrderState
from app.woocommerce.client import OrderPage
from app.woocommerce.models import Order

log = structlog.get_logger("woobird.backfill")

REASON = "backfill"
_WAITING = (OrderState.QUEUED.value, OrderState.BOOKING.value)
POLL_SECONDS = 1.0
# Orders listed per request; a resumed run re-lists at most the page before the one it stopped on.
PAGE_SIZE = 100


@dataclass
class BackfillProgress:
    """Counts so far; `total` is the shop's count of candidate orders (some may not qualify)."""

    total: int = 0
    listed: int = 0
    queued: int = 0
    skipped: int = 0  # already booked
    refused: int = 0
    booked: int = 0  # by the worker, while this run waited
    waiting: int = 0  # queued by this run and not finished yet
    eta_seconds: float | None = None
    # Of the orders queued (dry run: that would be booked), those of customers woobird has no
    # contact for yet, and the Moneybird requests all of them cost (see `calls_per_order`).
    new_customers: int = 0
    calls: int = 0


@dataclass
class Refusal:
    order_id: int
    order_number: str
    reason: str


@dataclass
class BackfillCursor:
    """Where a run that stopped early is: the page of the shop's listing it was on, the orders it
    handled on that page and the one before (a resumed run lists from the page before, in case the
    listing shifted, and skips these), and whether every page was listed (only waiting was left)."""

    page: int = 1
    handled: list[int] = field(default_factory=list)
    handled_before: list[int] = field(default_factory=list)
    listed_all: bool = False


@dataclass
class BackfillReport:
    since: datetime
    until: datetime | None
    dry_run: bool
    progress: BackfillProgress = field(default_factory=BackfillProgress)
    planned_total: Decimal = Decimal(0)  # dry run: sum of the planned invoice totals
    would_book: list[tuple[int, str, Decimal]] = field(default_factory=list)  # dry run: id, number, total
    # Customers with a contact, or one coming, as digests of their e-mail address (a resumable
    # run keeps these in Redis: no address is stored there); `new_emails` those this run added.
    known_emails: set[str] = field(default_factory=set)
    new_emails: set[str] = field(default_factory=set)
    cursor: BackfillCursor = field(default_factory=BackfillCursor)
    finished: bool = True  # False: stopped by `out_of_time`, go on with `resume=`

    def count_calls(self, order: Order, kind: InvoiceKind) -> None:
        """Count what booking `order` costs Moneybird, its customer new or returning."""
        email = (order.billing.email or "").strip().lower()
        digest = email_digest(email)
        new = not email or digest not in self.known_emails
        self.known_emails.add(digest)
        if new and email:
            self.new_emails.add(digest)
        self.progress.new_customers += new
        self.progress.calls += calls_per_order(kind, new_customer=new)

    def import_seconds(self, rate_limit: tuple[int, float]) -> float:
        """How long Moneybird's limit lets the counted requests take (requests ÷ limit)."""
        return self.progress.calls * seconds_per_call(rate_limit)

    def import_estimate(self, rate_limit: tuple[int, float]) -> str:
        """What booking the counted orders takes at Moneybird's limit, in a sentence."""
        progress = self.progress
        minutes = math.ceil(self.import_seconds(rate_limit) / 60)
        took = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
        return (
            f"Booking them takes about {took} at Moneybird's limit: {progress.calls} requests for "
            f"{progress.queued} orders, {progress.new_customers} of them by new customers (and, once, "
            "a request per 100 contacts Moneybird already has)."
        )

    refusals: list[Refusal] = field(default_factory=list)
    queued_ids: list[int] = field(default_factory=list)
    pending_ids: set[int] = field(default_factory=set)  # queued by this run, not finished yet
    not_in_range: int = 0  # listed, but unpaid or paid outside the range or in another status


ProgressCallback = Callable[[BackfillProgress], None]


def email_digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:24]


def calls_per_order(kind: InvoiceKind, *, new_customer: bool) -> int:
    """Moneybird requests one order costs once the contacts are copied (app.booking.contact_directory):
    create the contact (new customers only), the invoice, send it (sales invoices only), pay it."""
    return BACKFILL_CALLS_PER_ORDER - (not new_customer) - (kind == "external_sales_invoice")


def seconds_per_call(rate_limit: tuple[int, float]) -> float:
    limit, window = rate_limit
    return window / limit


def seconds_per_order(rate_limit: tuple[int, float]) -> float:
    """How long Moneybird's limit lets a new customer's order take, for the pacing."""
    return BACKFILL_CALLS_PER_ORDER * seconds_per_call(rate_limit)


def eta(
    remaining: int, rate_limit: tuple[int, float], *, calls_each: float = BACKFILL_CALLS_PER_ORDER
) -> float:
    """Seconds for `remaining` orders at `calls_each` requests per order (calls × orders ÷ limit)."""
    return remaining * calls_each * seconds_per_call(rate_limit)


def default_outstanding(rate_limit: tuple[int, float]) -> int:
    """A window's worth of orders: enough to keep every worker busy, few enough for live orders."""
    limit, _ = rate_limit
    return max(1, math.ceil(limit / BACKFILL_CALLS_PER_ORDER))


async def backfill(
    services: Services,
    *,
    since: datetime,
    until: datetime | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    wait: bool = False,
    max_outstanding: int | None = None,
    resume: BackfillReport | None = None,
    out_of_time: Callable[[], bool] | None = None,
) -> BackfillReport:
    """Queue (or, dry, plan) every order paid in [since, until); see the module docstring.

    `max_outstanding` bounds this run's jobs waiting in the queue (0 → no bound); `wait` keeps
    going until the worker finished every order this run queued, so the report can say booked.
    `resume` is the unfinished report of an earlier call, `out_of_time` says when to stop early.
    """
    if until is not None and until <= since:
        raise ValueError(f"--until ({until:%Y-%m-%d %H:%M}) must be after --since ({since:%Y-%m-%d %H:%M})")
    report = resume or BackfillReport(since=since, until=until, dry_run=dry_run)
    report.finished = False
    rate = services.settings.rate_limit
    report.known_emails = await _customers_with_contacts(services) | report.new_emails
    bound = default_outstanding(rate) if max_outstanding is None else max_outstanding
    notify = progress or (lambda _: None)
    stop = out_of_time or (lambda: False)
    planner = await _planner(services) if dry_run else None
    if not report.cursor.listed_all and not await _list_and_queue(
        services, report, planner=planner, bound=bound, notify=notify, stop=stop
    ):
        return report
    if wait and not dry_run:
        await _wait_for_room(services, report, bound=0, notify=notify, stop=stop)
        if report.progress.waiting:
            return report
    report.finished = True
    await _refresh(services, report)
    _estimate(report, rate)
    notify(report.progress)
    log.info(
        "backfill finished" if not dry_run else "backfill planned",
        since=since.isoformat(),
        until=until.isoformat() if until else None,
        queued=report.progress.queued,
        skipped=report.progress.skipped,
        refused=report.progress.refused,
        booked=report.progress.booked,
    )
    return report


async def _list_and_queue(
    services: Services,
    report: BackfillReport,
    *,
    planner: _Planner | None,
    bound: int,
    notify: ProgressCallback,
    stop: Callable[[], bool],
) -> bool:
    """Go through the listing from the cursor; False when `stop` said so before the last page."""
    cursor, rate = report.cursor, services.settings.rate_limit
    statuses = listed_statuses(services.settings.sync_order_statuses)
    page = max(1, cursor.page - 1) if cursor.handled or cursor.handled_before else cursor.page
    while True:
        listing = await _candidates(services, since=report.since, until=report.until, page=page)
        seen = {*cursor.handled, *cursor.handled_before}
        report.progress.total = listing.total
        for order in listing.orders:
            if order.id in seen:
                continue
            if stop():
                return False
            report.progress.listed += 1
            if not _paid_in_range(order, since=report.since, until=report.until, statuses=statuses):
                report.not_in_range += 1
            elif planner is not None:
                await _plan_one(services, planner, order, report)
            else:
                if bound and not await _wait_for_room(
                    services, report, bound=bound, notify=notify, stop=stop
                ):
                    report.progress.listed -= 1  # this order is gone through again on resume
                    return False
                await _queue_one(services, order, report)
            cursor.handled.append(order.id)
            _estimate(report, rate)
            notify(report.progress)
        if page >= listing.total_pages or not listing.orders:
            cursor.listed_all = True
            return True
        page += 1
        if page > cursor.page:  # a page not seen before: what the one before it handled is behind
            cursor.page, cursor.handled_before, cursor.handled = page, cursor.handled, []
        if stop():  # before listing a page only to stop
            return False


async def _candidates(services: Services, *, since: datetime, until: datetime | None, page: int) -> OrderPage:
    """One page of the orders that may have been paid in the range, with the shop's total count.

    Paid on or after `since` implies modified after it; paid before `until` implies created
    before it. WooCommerce compares both exclusively, hence the second of slack.
    """
    return await services.shop.list_orders(
        modified_after=since - timedelta(seconds=1),
        before=until,
        statuses=listed_statuses(services.settings.sync_order_statuses),
        orderby="date",
        page=page,
        per_page=PAGE_SIZE,
    )


def _paid_in_range(order: Order, *, since: datetime, until: datetime | None, statuses: Iterable[str]) -> bool:
    paid = order.date_paid_gmt
    if order.status not in statuses or paid is None or paid < since:
        return False
    return until is None or paid < until


# ── dry run ──────────────────────────────────────────────────────────────────────────────────


@dataclass
class _Planner:
    reference: object
    options: PlanOptions


async def _planner(services: Services) -> _Planner:
    reference = await services.reference.get(services.moneybird)
    return _Planner(reference=reference, options=services.plan_options())


async def _plan_one(services: Services, planner: _Planner, order: Order, report: BackfillReport) -> None:
    record = await _record(services, order.id)
    if record is not None and record.state == OrderState.BOOKED:
        report.progress.skipped += 1
        return
    try:
        plan = plan_invoice(order, reference=planner.reference, options=planner.options)  # type: ignore[arg-type]
    except PlanRefused as exc:
        report.progress.refused += 1
        report.refusals.append(Refusal(order.id, order.display_number, str(exc)))
        return
    report.progress.queued += 1
    report.count_calls(order, services.settings.invoice_kind)
    report.planned_total += plan.total
    report.would_book.append((order.id, order.display_number, plan.total))


# ── real run ─────────────────────────────────────────────────────────────────────────────────


async def _record(services: Services, order_id: int) -> OrderRecord | None:
    async with services.sessions() as session:
        return await ledger.get_order(session, order_id)


async def _queue_one(services: Services, order: Order, report: BackfillReport) -> None:
    """Mark the ledger row backfilled *before* the job exists, then queue through intake."""
    if order.date_modified_gmt is None:
        report.refusals.append(Refusal(order.id, order.display_number, "the shop sent no date_modified"))
        report.progress.refused += 1
        return
    async with transaction(services.sessions) as session:
        await ledger.record_delivery(
            session,
            order_id=order.id,
            order_number=order.display_number,
            date_modified=order.date_modified_gmt,
            date_paid=order.date_paid_gmt,
        )
        record = await ledger.get_order(session, order.id)
        assert record is not None
        if record.state == OrderState.BOOKED:
            report.progress.skipped += 1
            return
        if record.state == OrderState.FAILED:
            report.progress.refused += 1
            report.refusals.append(Refusal(order.id, order.display_number, f"failed earlier: {record.error}"))
            return
        values: dict[str, object] = {"backfilled": True}
        if record.state in (OrderState.BEFORE_SINCE, OrderState.SKIPPED):
            values["state"] = OrderState.QUEUED.value
        await ledger.update_order(session, order.id, **values)
        await ledger.add_event(session, order_id=order.id, step="backfill", message=N_("queued by backfill"))
    await record_and_enqueue(
        order, sessions=services.sessions, redis=services.redis, reason=REASON, backlog=True
    )
    report.progress.queued += 1
    report.count_calls(order, services.settings.invoice_kind)
    report.progress.waiting += 1
    report.queued_ids.append(order.id)
    report.pending_ids.add(order.id)


async def _wait_for_room(
    services: Services,
    report: BackfillReport,
    *,
    bound: int,
    notify: ProgressCallback,
    stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Sleep while more than `bound` of this run's orders wait for the worker; False when `stop`
    said so first."""
    while report.progress.waiting > bound:
        await _refresh(services, report)
        if report.progress.waiting <= bound:
            return True
        _estimate(report, services.settings.rate_limit)
        notify(report.progress)
        if stop():
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


async def _refresh(services: Services, report: BackfillReport) -> None:
    """Look up this run's unfinished orders: count the booked, turn the failed into refusals."""
    if not report.pending_ids:
        return
    finished: list[tuple[int, str, str, str | None]] = []
    async with services.sessions() as session:
        for chunk in _chunks(sorted(report.pending_ids), 500):
            query = select(
                OrderRecord.order_id, OrderRecord.order_number, OrderRecord.state, OrderRecord.error
            ).where(OrderRecord.order_id.in_(chunk), OrderRecord.state.not_in(_WAITING))
            finished.extend((await session.execute(query)).all())
    for order_id, number, state, error in finished:
        report.pending_ids.discard(order_id)
        if state == OrderState.BOOKED:
            report.progress.booked += 1
        elif state == OrderState.FAILED:
            report.progress.refused += 1
            report.refusals.append(Refusal(order_id, number, error or "failed"))
    report.progress.waiting = len(report.pending_ids)


def _chunks(values: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def _customers_with_contacts(services: Services) -> set[str]:
    async with services.sessions() as session:
        emails = (await session.execute(select(ContactRecord.email))).scalars()
        return {email_digest(email.strip().lower()) for email in emails if email}


def _estimate(report: BackfillReport, rate: tuple[int, float]) -> None:
    """The time left at Moneybird's limit: the orders still to book × what an order costs on average
    so far (or a new customer's, before any is counted) ÷ the limit. A dry run's covers them all."""
    progress = report.progress
    not_listed = max(0, progress.total - progress.listed)
    calls_each = progress.calls / progress.queued if progress.queued else BACKFILL_CALLS_PER_ORDER
    remaining = progress.queued + not_listed if report.dry_run else progress.waiting + not_listed
    progress.eta_seconds = eta(remaining, rate, calls_each=calls_each)
