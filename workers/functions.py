"""The jobs the worker runs, shared by `WorkerSettings` and the tests' burst workers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from app.booking.open_invoices import settle_invoice_job
from app.booking.orders import book_order_job
from app.booking.reconcile import reconcile_job, spread_reconciliations
from app.booking.redis_marker import start_watching, stop_watching
from app.booking.refunds import book_refund_job
from app.booking.shop_notes import write_shop_note_job
from app.booking.verify import verification_connection_function
from app.constants import (
    JOB_BOOK_ORDER,
    JOB_BOOK_REFUND,
    JOB_RECONCILE,
    JOB_RECONCILE_CONNECTION,
    JOB_SETTLE_INVOICE,
    JOB_SETUP_TASK,
    JOB_SHOP_NOTE,
    WORKER_FRESH_SLOTS,
    WORKER_JOB_TIMEOUT_SECONDS,
    WORKER_MAX_JOBS,
    WORKER_MAX_TRIES,
)
from app.jobs import BACKLOG_SLOTS, BacklogSlots
from app.runtime import shutdown, startup, when_set_up
from app.settings_live import LiveSettings
from app.setup.task_jobs import setup_task_job


async def on_startup(ctx: dict[str, Any]) -> None:
    """The worker's services, its backlog slots, and its watch for Redis losing its data
    (app.booking.redis_marker)."""
    ctx[BACKLOG_SLOTS] = BacklogSlots(WORKER_MAX_JOBS - WORKER_FRESH_SLOTS)
    await startup(ctx)
    start_watching(ctx)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await stop_watching(ctx)
    await shutdown(ctx)


def _booking_job(job: Callable[..., Awaitable[Any]], name: str) -> Function:
    # keep_result=0: the ledger, not Redis, remembers outcomes, and a kept result would block
    # `woobird retry` from queueing the same job id again for an hour.
    return func(cast(WorkerCoroutine, when_set_up(job)), name=name, max_tries=WORKER_MAX_TRIES, keep_result=0)


def job_functions() -> list[Function]:
    return [
        _booking_job(book_order_job, JOB_BOOK_ORDER),
        _booking_job(book_refund_job, JOB_BOOK_REFUND),
        _booking_job(write_shop_note_job, JOB_SHOP_NOTE),
        _booking_job(settle_invoice_job, JOB_SETTLE_INVOICE),
        # Another connection's pass, queued by `reconcile_every_connection`: the next slot retries.
        func(
            cast(WorkerCoroutine, when_set_up(reconcile_job, wait_seconds=None)),
            name=JOB_RECONCILE_CONNECTION,
            max_tries=1,
            keep_result=0,
        ),
        # Another connection's verification, queued by the hourly verification cron (spread).
        verification_connection_function(),
        # A slice of the wizard's long tasks: it builds its own services (it runs before booking may
        # start), ends before the job timeout and queues the next slice itself; a try cut short by a
        # dying worker is taken up again by arq from the slice's cursor.
        func(
            cast(WorkerCoroutine, setup_task_job),
            name=JOB_SETUP_TASK,
            max_tries=WORKER_MAX_TRIES,
            keep_result=0,
        ),
    ]


async def reconcile_every_connection(ctx: dict[str, Any]) -> Any:
    """The cron's body: spread the other connections' passes over the interval, then connection 1's."""
    live: LiveSettings | None = ctx.get("live_settings")
    if live is not None:  # a worker started from the environment (tests wire their own services)
        interval = live.current.reconcile_interval_seconds
        await spread_reconciliations(ctx["redis"], live.sessions, interval_seconds=interval, now=time.time())
    return await when_set_up(reconcile_job, wait_seconds=None)(ctx)


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
            cast(WorkerCoroutine, reconcile_every_connection),
            name=JOB_RECONCILE,
            unique=True,
            timeout=timeout_seconds,
            **reconcile_schedule(interval_seconds),
        )
    ]
