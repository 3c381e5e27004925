"""The payments poll: what Moneybird's pushes missed, found from the invoices woobird booked open.

Moneybird cannot push to a deployment that is down or not reachable from the internet, and gives up
on a push after 10 retries. Each reconciliation pass therefore reads back the open invoices the
ledger has awaiting payment — through the synchronization endpoint, 100 invoices a request, within
the shared rate limit — and queues settling for each that Moneybird shows paid, in full or in part.
With nothing awaiting payment it sends nothing.
"""

from __future__ import annotations

from typing import Final

import structlog
from sqlalchemy import select

from app.moneybird.client import Standing
from app.moneybird.errors import MoneybirdError
from app.queue import enqueue_settle
from app.runtime import Services
from app.schema import OrderRecord, OrderState

log = structlog.get_logger("woobird.reconcile")

# How many open invoices one pass reads back: 10 requests of Moneybird's 150 per 5 minutes at most;
# the oldest first, so a long tail is read over the next passes.
POLLED_PER_PASS: Final = 1000


def moved(standing: Standing) -> bool:
    """Moneybird shows money on it: paid in full, or a part payment (settling reports that)."""
    return standing.paid or standing.unpaid != standing.total


async def poll_open_invoices(services: Services) -> int:
    """Queue settling for every open invoice Moneybird shows (part) paid; returns how many were queued."""
    query = (
        select(OrderRecord.invoice_id)
        .where(OrderRecord.state == OrderState.AWAITING_PAYMENT.value, OrderRecord.invoice_id.is_not(None))
        .order_by(OrderRecord.updated_at)
        .limit(POLLED_PER_PASS)
    )
    async with services.sessions() as session:
        invoice_ids = [str(invoice_id) for invoice_id in (await session.execute(query)).scalars()]
    if not invoice_ids:
        return 0
    try:
        standings = await services.moneybird.invoices_by_id("sales_invoice", invoice_ids)
    except MoneybirdError as exc:
        # The shop's side of the pass is done; the next pass reads these again.
        log.warning("payments poll skipped", invoices=len(invoice_ids), error=str(exc))
        return 0
    queued = 0
    for standing in standings:
        if moved(standing) and await enqueue_settle(services.redis, invoice_id=standing.id, reason="poll"):
            queued += 1
    if queued:
        log.info("payments found by the poll", invoices_read=len(invoice_ids), queued=queued)
    return queued
