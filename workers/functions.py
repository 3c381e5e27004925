"""The jobs the worker runs, shared by `WorkerSettings` and the tests' burst workers."""

from __future__ import annotations

from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from app.booking.open_invoices import settle_invoice_job
from app.booking.orders import book_order_job
from app.booking.reconcile import reconcile_job
from app.booking.redis_marker import start_watching, stop_watching
from app.booking.refunds import book_refund_job
from app.booking.shop_notes import write_shop_note_job
from app.constants import (
    JOB_BOOK_ORDER,
    JOB_BOOK_REFUND,
    JOB_RECONCILE,
    JOB_SETTLE_INVOICE,
    JOB_SHOP_NOTE,
    WORKER_JOB_TIMEOUT_SECONDS,
    WORKER_MAX_TRIES,
)
from app.runtime import shutdown, startup, when_set_up


async def on_startup(ctx: dict[str, Any]) -> None:
    """The worker's services, and its watch for Redis losing its data (app.booking.redis_marker)."""
    await startup(ctx)
    start_watching(ctx)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await stop_watching(ctx)
    await shutdown(ctx)


def job_functions() -> list[Function]:
    # keep_result=0: the ledger, not Redis, remembers outcomes, and a kept result would block
    # `woobird retry` from queueing the same job id again for an hour.
    return [
        func(
            cast(WorkerCoroutine, when_set_up(book_order_job)),
            name=JOB_BOOK_ORDER,
            max_tries=WORKER_MAX_TRIES,
            keep_result=0,
        ),
        func(
            cast(WorkerCoroutine, when_set_up(book_refund_job)),
            name=JOB_BOOK_REFUND,
            max_tries=WORKER_MAX_TRIES,
            keep_result=0,
        ),
        func(
            cast(WorkerCoroutine, when_set_up(write_shop_note_job)),
            name=JOB_SHOP_NOTE,
            max_tries=WORKER_MAX_TRIES,
            keep_result=0,
        ),
        func(
            cast(WorkerCoroutine, when_set_up(settle_invoice_job)),
            name=JOB_SETTLE_INVOICE,
            max_tries=WORKER_MAX_TRIES,
            keep_result=0,
        ),
    ]


def reconcile_schedule(interval_seconds: int) -> dict[str, Any]:
    """arq cron fields for "every N seconds", rounded to what a clock face can express."""
    if interval_seconds < 60:
        return {"second": set(range(0, 60, interval_seconds))}
    minutes = max(1, interval_seconds // 60)
    if minutes >= 60:
        return {"minute": {0}, "second": 0, "hour": set(range(0, 24, max(1, minutes // 60)))}
    return {"minute": set(range(0, 60, minutes)), "second": 0}


def cron_jobs(interval_seconds: int, *, timeout_seconds: int = WORKER_JOB_TIMEOUT_SECONDS) -> list[CronJob]:
    # unique: every worker schedules the slot, one runs it (arq's cron job id is per slot).
    return [
        cron(
            cast(WorkerCoroutine, when_set_up(reconcile_job, wait_seconds=None)),
            name=JOB_RECONCILE,
            unique=True,
            timeout=timeout_seconds,
            **reconcile_schedule(interval_seconds),
        )
    ]
