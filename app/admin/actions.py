"""What a person can do from the dashboard: give a failed order another try."""

from __future__ import annotations

import time
from datetime import datetime

import structlog

from app.alerts import clear_alert
from app.constants import JOB_BOOK_ORDER
from app.db import transaction
from app.deps import AppState
from app.queue import order_job_id
from app.sync import ledger
from app.sync.ledger import OrderState
from app.wake import wake_workers

log = structlog.get_logger("woobird.admin")

RETRYABLE = frozenset({OrderState.FAILED.value})


class RetryRefused(Exception):
    """The order cannot be retried now; the message says why."""


def retry_job_id(order_id: int, date_modified: datetime, *, now: float | None = None) -> str:
    """A job id of its own: arq refuses an id whose job or kept result is still in Redis."""
    moment = time.time() if now is None else now
    return f"{order_job_id(order_id, date_modified)}:retry:{int(moment * 1000)}"


async def retry_order(state: AppState, *, order_id: int) -> str:
    """Put a failed order back in the queue; returns the job id.

    The ledger says "queued" before the job exists, so a fast worker's "booked" can never be
    overwritten by this; if Redis refuses the job, the order goes back to failed with the reason.
    """
    async with transaction(state.sessions) as session:
        record = await ledger.get_order(session, order_id, for_update=True)
        if record is None:
            raise RetryRefused(f"order {order_id} is not in the ledger")
        if record.state not in RETRYABLE:
            raise RetryRefused(
                f"order {record.order_number or order_id} is {record.state}: only failed orders are retried"
            )
        previous_error, previous_kind = record.error, record.failure_kind
        await ledger.update_order(
            session, order_id, state=OrderState.QUEUED.value, error=None, failure_kind=None
        )
        await ledger.add_event(
            session, order_id=order_id, step="retry", message="retry requested on the dashboard"
        )
    job_id = retry_job_id(order_id, record.date_modified)
    try:
        job = await state.redis.enqueue_job(JOB_BOOK_ORDER, order_id, "dashboard retry", _job_id=job_id)
        if job is None:
            raise RuntimeError(f"arq already knows job {job_id}")
    except Exception as exc:
        await _undo(state, order_id=order_id, error=previous_error, kind=previous_kind, why=exc)
        raise RetryRefused(f"the retry could not be queued ({type(exc).__name__}: {exc}); try again") from exc
    await wake_workers(state.redis)
    await clear_alert(state, cause=f"order-failed:{order_id}")
    log.info("order retry queued", order_id=order_id, job_id=job_id)
    return job_id


async def _undo(
    state: AppState, *, order_id: int, error: str | None, kind: str | None, why: Exception
) -> None:
    async with transaction(state.sessions) as session:
        await ledger.update_order(
            session, order_id, state=OrderState.FAILED.value, error=error, failure_kind=kind
        )
        await ledger.add_event(
            session, order_id=order_id, step="retry", message=f"retry not queued: {type(why).__name__}"
        )
