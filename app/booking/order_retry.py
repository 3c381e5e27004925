"""Giving a failed order another try: the one action behind `woobird retry` and the dashboard's Retry.

Only failed orders are retried: a skipped order comes back by itself when the shop changes it (a
webhook or reconciliation), an order paid before SYNC_SINCE through `woobird backfill`, and a
booked, queued or booking one has nothing to retry.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

import structlog

from app.alerts import clear_alert
from app.booking import ledger
from app.db import transaction
from app.queue import enqueue, order_job, order_job_id
from app.runtime import Stores
from app.schema import OrderState

log = structlog.get_logger("woobird.retry")

RETRYABLE = frozenset({OrderState.FAILED.value})


class RetryRefused(Exception):
    """The order cannot be retried now; the message says why."""

    def __init__(self, message: str, *, order_id: int) -> None:
        super().__init__(message)
        self.order_id = order_id


def retry_job_id(order_id: int, date_modified: datetime, *, now: float | None = None) -> str:
    """A job id of its own: arq refuses an id whose job or kept result is still in Redis."""
    moment = time.time() if now is None else now
    return f"{order_job_id(order_id, date_modified)}:retry:{int(moment * 1000)}"


async def retry_order(stores: Stores, *, order_id: int, event: str, reason: str) -> str:
    """Put a failed order back in the queue; returns the job id.

    `event` is the ledger event's message (who asked), `reason` the job's. The row is locked while
    its state is read and changed, so two retries of one order queue one job. The ledger says
    "queued" before the job exists, so a fast worker's "booked" can never be overwritten by this;
    if Redis refuses the job, the order goes back to failed with its reason. A queued retry
    clears the order's alert, so a new failure alerts again.
    """
    async with transaction(stores.sessions) as session:
        record = await ledger.get_order(session, order_id, for_update=True)
        if record is None:
            raise RetryRefused(f"order {order_id} is not in the ledger", order_id=order_id)
        if record.state not in RETRYABLE:
            raise RetryRefused(
                f"order {record.order_number or order_id} is {record.state}: only failed orders are retried",
                order_id=order_id,
            )
        previous_error, previous_kind = record.error, record.failure_kind
        await ledger.update_order(
            session, order_id, state=OrderState.QUEUED.value, error=None, failure_kind=None
        )
        await ledger.add_event(session, order_id=order_id, step="retry", message=event)
    job = order_job(order_id, record.date_modified, reason=reason)
    job_id = retry_job_id(order_id, record.date_modified)
    try:
        if not await enqueue(stores.redis, replace(job, job_id=job_id)):
            raise RuntimeError(f"arq already knows job {job_id}")
    except Exception as exc:
        await _undo(stores, order_id=order_id, error=previous_error, kind=previous_kind, why=exc)
        raise RetryRefused(
            f"the retry could not be queued ({type(exc).__name__}: {exc}); try again", order_id=order_id
        ) from exc
    await clear_alert(stores, cause=f"order-failed:{order_id}")
    log.info("order retry queued", order_id=order_id, job_id=job_id)
    return job_id


async def _undo(
    stores: Stores, *, order_id: int, error: str | None, kind: str | None, why: Exception
) -> None:
    async with transaction(stores.sessions) as session:
        await ledger.update_order(
            session, order_id, state=OrderState.FAILED.value, error=error, failure_kind=kind
        )
        await ledger.add_event(
            session, order_id=order_id, step="retry", message=f"retry not queued: {type(why).__name__}"
        )
