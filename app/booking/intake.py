"""Which orders woobird books, and the one path by which an order enters the queue.

Webhook deliveries, the reconciliation poll, backfills and `woobird retry` all come through
`accept_order`: record in the ledger first, then enqueue, so a 2xx is only ever given for work
that is durably written down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from app import schema
from app.booking import ledger
from app.connection_scope import connection_of_sessions
from app.db import transaction
from app.i18n import Message
from app.queue import enqueue_orders
from app.settings import Settings
from app.woocommerce.models import OrderHeader

Outcome = Literal["queued", "duplicate", "ignored"]


@dataclass(frozen=True, slots=True)
class Qualification:
    ok: bool
    reason: str
    before_since: bool = False
    open_invoice: bool = False  # booked unpaid, as an open invoice (app.booking.open_invoices)


@dataclass(frozen=True, slots=True)
class OpenInvoiceRule:
    """OPEN_INVOICE_PAYMENT_METHODS and OPEN_INVOICE_STATUSES: which unpaid orders get an open invoice."""

    payment_methods: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenInvoiceRule:
        return cls(
            frozenset(settings.open_invoice_payment_methods), frozenset(settings.open_invoice_statuses)
        )

    @property
    def on(self) -> bool:
        return bool(self.payment_methods)

    def applies(self, order: OrderHeader) -> bool:
        """Unpaid, of one of the payment methods, in one of the statuses."""
        return (
            order.date_paid_gmt is None
            and order.payment_method in self.payment_methods
            and order.status in self.statuses
        )


NO_OPEN_INVOICES = OpenInvoiceRule()
# Statuses in which an order's open invoice is credited in full: the order ended without payment.
ENDED_UNPAID = frozenset({"cancelled", "refunded", "failed", "trash"})


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: Outcome
    reason: str
    order_id: int


# A paid order refunded in full is "refunded": it is still booked (invoice, then credit invoice).
REFUNDED = "refunded"


def listed_statuses(statuses: list[str], open_invoices: OpenInvoiceRule = NO_OPEN_INVOICES) -> list[str]:
    """The statuses to ask the shop for: the ones we sync, and paid orders refunded since; with open
    invoices on, also the statuses that wait for payment and those that end an order unpaid."""
    listed = [*statuses, REFUNDED] if REFUNDED not in statuses else list(statuses)
    if open_invoices.on:
        listed += sorted((open_invoices.statuses | (ENDED_UNPAID - {"trash"})) - set(listed))
    return listed


def qualify(
    order: OrderHeader,
    *,
    statuses: list[str],
    since: datetime,
    open_invoices: OpenInvoiceRule = NO_OPEN_INVOICES,
) -> Qualification:
    """An order is booked when its status is one we sync, it is paid, and paid on or after since;
    or, unpaid, as an open invoice when OPEN_INVOICE_PAYMENT_METHODS names its payment method."""
    if open_invoices.applies(order):
        created = order.date_created_gmt or order.date_modified_gmt
        if created is not None and created < since:
            return Qualification(
                False,
                Message(
                    "created %(created)s UTC, before SYNC_SINCE %(since)s UTC: "
                    "its open invoice is not booked",
                    created=f"{created:%Y-%m-%d %H:%M}",
                    since=f"{since:%Y-%m-%d %H:%M}",
                ),
            )
        return Qualification(
            True,
            Message("unpaid %(method)s order: booked as an open invoice", method=order.payment_method),
            open_invoice=True,
        )
    if order.status not in statuses and not (order.status == REFUNDED and order.date_paid_gmt):
        return Qualification(
            False,
            Message(
                "status '%(status)s' is not in SYNC_ORDER_STATUSES (%(statuses)s)",
                status=order.status,
                statuses=",".join(statuses),
            ),
        )
    if order.date_paid_gmt is None:
        return Qualification(False, Message("not paid (date_paid is empty)"))
    if order.date_paid_gmt < since:
        return Qualification(
            False,
            Message(
                "paid %(paid)s UTC, before SYNC_SINCE %(since)s UTC "
                "(use `woobird backfill` to book older orders)",
                paid=f"{order.date_paid_gmt:%Y-%m-%d %H:%M}",
                since=f"{since:%Y-%m-%d %H:%M}",
            ),
            before_since=True,
        )
    return Qualification(True, Message("qualifies"))


async def accept_order(
    order: OrderHeader,
    *,
    sessions: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    statuses: list[str],
    since: datetime,
    reason: str,
    writer: IntakeWriter | None = None,
    open_invoices: OpenInvoiceRule = NO_OPEN_INVOICES,
) -> IntakeResult:
    """Record a qualifying order in the ledger and queue it; say why when nothing was queued."""
    verdict = qualify(order, statuses=statuses, since=since, open_invoices=open_invoices)
    if not verdict.ok and order.refunds and await _is_booked(sessions, order.id):
        # A full refund moves the order to "refunded", out of SYNC_ORDER_STATUSES: its invoice is
        # booked, and the refund still has to become a credit invoice.
        verdict = Qualification(True, Message("booked order with refunds"))
        reason = f"{reason} (refund)"
    elif not verdict.ok and open_invoices.on and await _awaits_payment(sessions, order.id):
        # Its open invoice waits: any change (paid in the shop, cancelled) is the worker's to judge.
        verdict = Qualification(True, Message("order with an open invoice"))
        reason = f"{reason} (open invoice)"
    if not verdict.ok:
        if verdict.before_since and order.date_paid_gmt and order.date_modified_gmt:
            async with transaction(sessions) as session:
                await ledger.mark_before_since(
                    session,
                    order_id=order.id,
                    order_number=order.display_number,
                    date_modified=order.date_modified_gmt,
                    date_paid=order.date_paid_gmt,
                )
        return IntakeResult("ignored", verdict.reason, order.id)
    if writer is not None:
        return await writer.submit(order, reason=reason)
    return await record_and_enqueue(order, sessions=sessions, redis=redis, reason=reason)


async def _awaits_payment(sessions: async_sessionmaker[AsyncSession], order_id: int) -> bool:
    async with sessions() as session:
        record = await ledger.get_order(session, order_id)
    return record is not None and record.state == schema.OrderState.AWAITING_PAYMENT


async def _is_booked(sessions: async_sessionmaker[AsyncSession], order_id: int) -> bool:
    async with sessions() as session:
        record = await ledger.get_order(session, order_id)
    return record is not None and record.state == schema.OrderState.BOOKED


async def record_and_enqueue(
    order: OrderHeader,
    *,
    sessions: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    reason: str,
    backlog: bool = False,
) -> IntakeResult:
    """Record one version of an order and queue it (see `record_and_enqueue_many`)."""
    [result] = await record_and_enqueue_many(
        [(order, reason)], sessions=sessions, redis=redis, backlog=backlog
    )
    return result


async def record_and_enqueue_many(
    arrivals: Sequence[tuple[OrderHeader, str]],
    *,
    sessions: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    thread_sessions: sessionmaker[Session] | None = None,
    backlog: bool = False,
) -> list[IntakeResult]:
    """Record order versions in one transaction, then queue the news in one round trip (the
    history import's as `backlog`: behind every fresh order, app.queue.enqueue_orders).

    Within the batch an order counts once, its newest version; the other copies are duplicates.
    A version already recorded but still waiting is queued again: the first enqueue may have
    failed after the commit (Redis away), and the script drops the copy if the job is still there.
    """
    newest: dict[int, OrderHeader] = {}
    for order, _ in arrivals:
        if order.date_modified_gmt is None:
            raise ValueError(f"order {order.id} has no date_modified_gmt")
        kept = newest.get(order.id)
        if kept is None or _modified(order) > _modified(kept):
            newest[order.id] = order
    versions = [
        ledger.OrderVersion(
            order_id=o.id,
            order_number=o.display_number,
            date_modified=_modified(o),
            date_paid=o.date_paid_gmt,
        )
        for o in newest.values()
    ]
    if thread_sessions is not None:
        news, recorded = await asyncio.to_thread(_record_in_thread, thread_sessions, versions)
    else:
        async with transaction(sessions) as session:
            news = await ledger.record_deliveries(session, versions)
            recorded = await ledger.versions_of(session, [oid for oid in newest if oid not in news])
    reasons = {order.id: reason for order, reason in arrivals if order is newest[order.id]}
    unknown_refunds = await _with_unknown_refunds(sessions, newest=newest, recorded=recorded)
    waiting = [
        o
        for oid, o in newest.items()
        if oid in news
        or oid in unknown_refunds
        or (recorded.get(oid, ("", None))[0] == schema.OrderState.QUEUED and recorded[oid][1] == _modified(o))
    ]
    queued = await enqueue_orders(
        redis,
        [(o.id, _modified(o), reasons[o.id]) for o in waiting],
        connection_id=connection_of_sessions(sessions),
        backlog=backlog,
    )
    return [
        _verdict(order, newest=newest, news=news, recorded=recorded, queued=queued) for order, _ in arrivals
    ]


async def _with_unknown_refunds(
    sessions: async_sessionmaker[AsyncSession],
    *,
    newest: dict[int, OrderHeader],
    recorded: dict[int, tuple[str, datetime]],
) -> set[int]:
    """Booked orders listing a refund the ledger has not seen: their job must run (again).

    The version may be recorded while its job was lost (Redis flushed): without this, the refund
    would wait for the shop to change the order once more.
    """
    candidates = [
        oid
        for oid, (state, _) in recorded.items()
        if state == schema.OrderState.BOOKED and newest[oid].refunds
    ]
    if not candidates:
        return set()
    async with sessions() as session:
        known = await ledger.refund_ids_of(session, candidates)
    return {oid for oid in candidates if {r.id for r in newest[oid].refunds} - known.get(oid, set())}


def _record_in_thread(
    thread_sessions: sessionmaker[Session], versions: list[ledger.OrderVersion]
) -> tuple[set[int], dict[int, tuple[str, datetime]]]:
    with thread_sessions() as session:
        return ledger.record_deliveries_in_thread(session, versions)


def _modified(order: OrderHeader) -> datetime:
    assert order.date_modified_gmt is not None
    return order.date_modified_gmt


def _verdict(
    order: OrderHeader,
    *,
    newest: dict[int, OrderHeader],
    news: set[int],
    recorded: dict[int, tuple[str, datetime]],
    queued: set[int],
) -> IntakeResult:
    if order is not newest[order.id]:
        return IntakeResult("duplicate", "another copy of this order arrived at the same time", order.id)
    if order.id in news:
        return IntakeResult("queued", "recorded and queued for booking", order.id)
    state, modified = recorded.get(order.id, ("", _modified(order)))
    if modified > _modified(order):
        return IntakeResult("duplicate", "a newer version of the order was already received", order.id)
    if order.id in queued:
        return IntakeResult("queued", "recorded earlier, queued again", order.id)
    if state != schema.OrderState.QUEUED:
        return IntakeResult(
            "duplicate", f"this version of the order was already received ({state})", order.id
        )
    return IntakeResult("duplicate", "this version of the order is already queued", order.id)


@dataclass(slots=True)
class _Arrival:
    order: OrderHeader
    reason: str
    answer: asyncio.Future[IntakeResult]


class IntakeWriter:
    """Group commit for the webhook: one writer records and queues whatever has arrived.

    Under load, deliveries that arrive while a batch is being written wait for the next one and
    are written together: one transaction and one Redis round trip for many orders, instead of
    one each. Every request still waits for its own order to be durable before it is answered.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        redis: ArqRedis,
        thread_sessions: sessionmaker[Session] | None = None,
        max_batch: int = 200,
    ) -> None:
        self._sessions = sessions
        self._thread_sessions = thread_sessions
        self._redis = redis
        self._max_batch = max_batch
        self._arrivals: asyncio.Queue[_Arrival] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, order: OrderHeader, *, reason: str) -> IntakeResult:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_forever(), name="woobird-intake-writer")
        answer: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        self._arrivals.put_nowait(_Arrival(order, reason, answer))
        return await answer

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._arrivals.get()]
            while len(batch) < self._max_batch and not self._arrivals.empty():
                batch.append(self._arrivals.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Arrival]) -> None:
        try:
            results = await record_and_enqueue_many(
                [(a.order, a.reason) for a in batch],
                sessions=self._sessions,
                redis=self._redis,
                thread_sessions=self._thread_sessions,
            )
        except Exception as exc:  # the database or Redis: every request in the batch gets a 503
            for arrival in batch:
                if not arrival.answer.done():
                    arrival.answer.set_exception(exc)
            return
        for arrival, result in zip(batch, results, strict=True):
            if not arrival.answer.done():
                arrival.answer.set_result(result)
