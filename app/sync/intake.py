"""Which orders woobird books, and the one path by which an order enters the queue.

Webhook deliveries, the reconciliation poll, backfills and `woobird retry` all come through
`accept_order`: record in the ledger first, then enqueue, so a 2xx is only ever given for work
that is durably written down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.queue import enqueue_order
from app.sync import ledger
from app.woocommerce.models import Order

Outcome = Literal["queued", "duplicate", "ignored"]


@dataclass(frozen=True, slots=True)
class Qualification:
    ok: bool
    reason: str
    before_since: bool = False


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: Outcome
    reason: str
    order_id: int


def qualify(order: Order, *, statuses: list[str], since: datetime) -> Qualification:
    """An order is booked when its status is one we sync, it is paid, and paid on or after since."""
    if order.status not in statuses:
        return Qualification(
            False, f"status {order.status!r} is not in SYNC_ORDER_STATUSES ({','.join(statuses)})"
        )
    if order.date_paid_gmt is None:
        return Qualification(False, "not paid (date_paid is empty)")
    if order.date_paid_gmt < since:
        return Qualification(
            False,
            f"paid {order.date_paid_gmt:%Y-%m-%d %H:%M} UTC, before SYNC_SINCE {since:%Y-%m-%d %H:%M} UTC"
            " (use `woobird backfill` to book older orders)",
            before_since=True,
        )
    return Qualification(True, "qualifies")


async def accept_order(
    order: Order,
    *,
    sessions: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    statuses: list[str],
    since: datetime,
    reason: str,
) -> IntakeResult:
    """Record a qualifying order in the ledger and queue it; say why when nothing was queued."""
    verdict = qualify(order, statuses=statuses, since=since)
    if not verdict.ok and order.refunds and await _is_booked(sessions, order.id):
        # A full refund moves the order to "refunded", out of SYNC_ORDER_STATUSES: its invoice is
        # booked, and the refund still has to become a credit invoice.
        return await record_and_enqueue(order, sessions=sessions, redis=redis, reason=f"{reason} (refund)")
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
    return await record_and_enqueue(order, sessions=sessions, redis=redis, reason=reason)


async def _is_booked(sessions: async_sessionmaker[AsyncSession], order_id: int) -> bool:
    async with sessions() as session:
        record = await ledger.get_order(session, order_id)
    return record is not None and record.state == ledger.OrderState.BOOKED


async def record_and_enqueue(
    order: Order, *, sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, reason: str
) -> IntakeResult:
    if order.date_modified_gmt is None:
        raise ValueError(f"order {order.id} has no date_modified_gmt")
    async with transaction(sessions) as session:
        news = await ledger.record_delivery(
            session,
            order_id=order.id,
            order_number=order.display_number,
            date_modified=order.date_modified_gmt,
            date_paid=order.date_paid_gmt,
        )
        record = None if news else await ledger.get_order(session, order.id)
    # A version already recorded but still waiting is queued again: the first enqueue may have
    # failed after the commit (Redis away), and arq drops the copy if the job is still there.
    if record is not None and record.date_modified > order.date_modified_gmt:
        return IntakeResult("duplicate", "a newer version of the order was already received", order.id)
    if record is not None and record.state != ledger.OrderState.QUEUED:
        return IntakeResult(
            "duplicate", f"this version of the order was already received ({record.state})", order.id
        )
    queued = await enqueue_order(
        redis, order_id=order.id, date_modified=order.date_modified_gmt, reason=reason
    )
    if not news and not queued:
        return IntakeResult("duplicate", "this version of the order is already queued", order.id)
    return IntakeResult("queued", "recorded and queued for booking", order.id)
