"""The worker's side of the wizard's long tasks (app/setup/tasks.py): each job runs one slice.

arq cancels a job at its timeout (WORKER_JOB_TIMEOUT_SECONDS, small), and a backfill of 10 000
orders takes hours at Moneybird's limit. So a slice works until shortly before its deadline, writes
down where it is (a cursor in Redis keyed by the connection: the listing's page and the orders it
handled there, the counts so far, this run's orders still waiting for the worker; for products the
SKUs handled), and queues the next slice. A worker killed mid-slice leaves the cursor of the slice
before: arq takes the job up again and it goes on from there. What it does again is harmless — the
ledger skips booked orders and does not queue a waiting one twice, a product made before is
adopted — so nothing is booked or created twice.

A slice that finds the cursor already past it (it was run again after it had queued its
successor) only makes sure the successor is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import structlog
from arq import Retry
from arq.connections import ArqRedis
from redis.exceptions import LockError

from app.booking.backfill import (
    BackfillCursor,
    BackfillProgress,
    BackfillReport,
    Refusal,
    backfill,
)
from app.booking.products import TransferReport, transfer_products
from app.clients import transport_overrides
from app.connection_scope import contact_book_of
from app.constants import ENVIRONMENT_CONNECTION_ID, WORKER_JOB_TIMEOUT_SECONDS
from app.i18n import Message, said
from app.runtime import Services, build_services, for_connection
from app.settings_live import LiveSettings
from app.settings_store import administrations_of
from app.setup import tasks
from app.setup.tasks import TaskStatus

log = structlog.get_logger("woobird.setup")

# A slice stops this long before arq's job timeout: time to save its cursor and queue the next.
SLICE_MARGIN_SECONDS: Final = 15.0
HEARTBEAT_SECONDS: Final = 1.0


def slice_deadline(job_timeout_seconds: int) -> Callable[[], bool]:
    """When a slice must stop: shortly before arq's timeout (at least a second's work)."""
    stop_at = time.monotonic() + max(1.0, job_timeout_seconds - SLICE_MARGIN_SECONDS)
    return lambda: time.monotonic() >= stop_at


async def setup_task_job(
    ctx: dict[str, Any], kind: str, slice_number: int, *, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> str:
    redis: ArqRedis = ctx["redis"]
    # Expires before arq takes the job of a killed worker up again (its timeout + 10 s).
    lock = redis.lock(tasks.slice_lock_key(kind, connection_id), timeout=_job_timeout(ctx) + 5)
    if not await lock.acquire(blocking=False):
        raise Retry(defer=5)  # another slice of this task still runs
    try:
        return await _run_slice(ctx, redis, kind, slice_number, connection_id=connection_id)
    finally:
        with contextlib.suppress(LockError):
            await lock.release()


def _job_timeout(ctx: dict[str, Any]) -> int:
    live: LiveSettings | None = ctx.get("live_settings")
    services: Services | None = ctx.get("services")
    settings = live.current if live is not None else services.settings if services is not None else None
    return settings.worker_job_timeout_seconds if settings is not None else WORKER_JOB_TIMEOUT_SECONDS


async def _run_slice(
    ctx: dict[str, Any], redis: ArqRedis, kind: str, slice_number: int, *, connection_id: int
) -> str:
    status = await tasks.load_status(redis, kind, connection_id=connection_id)
    if status is None or not status.active:
        return "nothing to do: the task has ended"
    raw = await redis.get(tasks.cursor_key(kind, connection_id))
    cursor: dict[str, Any] = json.loads(raw) if raw else {"slice": 1}
    if cursor["slice"] > slice_number:  # run again after it had queued its successor
        await tasks.queue_slice(redis, kind, slice_number=cursor["slice"], connection_id=connection_id)
        return f"superseded by slice {cursor['slice']}"
    if await redis.get(tasks.cancel_key(kind, connection_id)) is not None:
        return await _end(redis, status, "cancelled", connection_id=connection_id)
    status.state = "running"
    stopping = _Stopping(lambda: False)
    beat = asyncio.create_task(_heartbeat(redis, status, stopping, connection_id=connection_id))
    services: Services | None = None
    owned = False
    try:
        services, owned = await _services(ctx, connection_id)
        stopping.out_of_time = slice_deadline(services.settings.worker_job_timeout_seconds)
        finished, state = await _RUNNERS[kind](services, status, cursor, stopping)
    except Retry:  # a passing refusal (Moneybird's limit): arq runs this slice again from its cursor
        raise
    except Exception as exc:
        log.error("set-up task failed", task=kind, error=type(exc).__name__)
        status.message = Message("it stopped on an error: %(error)s", error=said(exc)[:300])
        return await _end(redis, status, "failed", connection_id=connection_id)
    finally:
        beat.cancel()
        if owned and services is not None:
            await services.aclose()
    if finished:
        return await _end(redis, status, "done", connection_id=connection_id)
    if stopping.cancelled:
        return await _end(redis, status, "cancelled", connection_id=connection_id)
    # Out of time: the cursor first, then the next slice (a crash in between is healed above).
    state["slice"] = slice_number + 1
    await redis.set(tasks.cursor_key(kind, connection_id), json.dumps(state), ex=tasks.KEEP_SECONDS)
    await tasks.save_status(redis, status, connection_id=connection_id)
    await tasks.queue_slice(redis, kind, slice_number=slice_number + 1, connection_id=connection_id)
    return f"slice {slice_number} out of time; slice {slice_number + 1} queued"


class _Stopping:
    """Whether the slice must stop: its time is up, or the admin cancelled (seen by the heartbeat)."""

    def __init__(self, out_of_time: Callable[[], bool]) -> None:
        self.out_of_time = out_of_time
        self.cancelled = False

    def __call__(self) -> bool:
        return self.cancelled or self.out_of_time()


async def _heartbeat(redis: ArqRedis, status: TaskStatus, stopping: _Stopping, *, connection_id: int) -> None:
    """Write the progress for the page, keep the claim alive, and listen for a cancel."""
    while True:
        await tasks.save_status(redis, status, connection_id=connection_id)
        await redis.expire(tasks.claim_key(status.kind, connection_id), tasks.CLAIM_SECONDS)
        if await redis.get(tasks.cancel_key(status.kind, connection_id)) is not None:
            stopping.cancelled = True
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def _end(redis: ArqRedis, status: TaskStatus, state: str, *, connection_id: int) -> str:
    status.state = state
    await tasks.save_status(redis, status, connection_id=connection_id)
    await redis.delete(
        tasks.claim_key(status.kind, connection_id),
        tasks.cursor_key(status.kind, connection_id),
        tasks.cancel_key(status.kind, connection_id),
    )
    log.info("set-up task ended", task=status.kind, state=state)
    return state


async def _services(ctx: dict[str, Any], connection_id: int) -> tuple[Services, bool]:
    """The task's services, built from the connection's current settings (the wizard's task runs
    before booking may start, when the worker's own services wait); a test's worker hands its own."""
    first: LiveSettings | None = ctx.get("live_settings")
    if first is None:
        if connection_id == ENVIRONMENT_CONNECTION_ID:
            given: Services = ctx["services"]
            return given, False
        return ctx["connection_services"][connection_id][1], False
    # Read afresh, not through the worker's own LiveSettings: the admin may have chosen a setting a
    # moment ago (the products' ledger account comes with the button), and the booking jobs' look
    # for changes must still see them.
    settings = await LiveSettings(first.base, first.sessions, connection_id=connection_id).start()
    if connection_id == ENVIRONMENT_CONNECTION_ID:
        return await build_services(settings, ctx["redis"], **transport_overrides()), True
    async with first.sessions() as session:
        administrations = await administrations_of(session, first=first.current)
    built = await build_services(
        settings,
        ctx["redis"],
        environment=first.current,
        connection_id=connection_id,
        **transport_overrides(),
    )
    return for_connection(
        built, connection_id=connection_id, contact_book_id=contact_book_of(connection_id, administrations)
    ), True


# ── the products ─────────────────────────────────────────────────────────────────────────────

_Result = tuple[bool, dict[str, Any]]


async def _products(
    services: Services, status: TaskStatus, cursor: dict[str, Any], stop: _Stopping
) -> _Result:
    dry_run = status.kind == "products-preview"
    saved = cursor.get("report")
    resume = None
    if saved:
        resume = TransferReport(
            dry_run=dry_run,
            created=[(sku, pid) for sku, pid in saved["created"]],
            adopted=[(sku, pid) for sku, pid in saved["adopted"]],
            refused=[(sku, reason) for sku, reason in saved["refused"]],
        )

    def progress(done: int, total: int) -> None:
        status.done, status.total = done, total

    report = await transfer_products(
        services, dry_run=dry_run, progress=progress, resume=resume, out_of_time=stop
    )
    status.counts = {
        "created": len(report.created),
        "adopted": len(report.adopted),
        "without_sku": report.without_sku,
        "refused": len(report.refused),
    }
    status.lines = [f"{sku}: {reason}" for sku, reason in report.refused][:200]
    kept = {"created": report.created, "adopted": report.adopted, "refused": report.refused}
    return report.finished, {"report": kept}


# ── the backfill ─────────────────────────────────────────────────────────────────────────────


def _report_state(report: BackfillReport) -> dict[str, Any]:
    """What a backfill needs to go on in the next slice (no e-mail address: digests only)."""
    return {
        "progress": asdict(report.progress),
        "cursor": asdict(report.cursor),
        "planned_total": str(report.planned_total),
        "would_book": [[order_id, number, str(total)] for order_id, number, total in report.would_book],
        "new_emails": sorted(report.new_emails),
        "refusals": [asdict(refusal) for refusal in report.refusals],
        "queued_ids": report.queued_ids,
        "pending_ids": sorted(report.pending_ids),
        "not_in_range": report.not_in_range,
    }


def _report_from(state: dict[str, Any], *, since: datetime, dry_run: bool) -> BackfillReport:
    return BackfillReport(
        since=since,
        until=None,
        dry_run=dry_run,
        progress=BackfillProgress(**state["progress"]),
        cursor=BackfillCursor(**state["cursor"]),
        planned_total=Decimal(state["planned_total"]),
        would_book=[(order_id, number, Decimal(total)) for order_id, number, total in state["would_book"]],
        new_emails=set(state["new_emails"]),
        refusals=[Refusal(**refusal) for refusal in state["refusals"]],
        queued_ids=list(state["queued_ids"]),
        pending_ids=set(state["pending_ids"]),
        not_in_range=state["not_in_range"],
    )


async def _history(
    services: Services, status: TaskStatus, cursor: dict[str, Any], stop: _Stopping
) -> _Result:
    dry_run = status.kind == "history-preview"
    since = datetime.fromisoformat(status.since)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    saved = cursor.get("report")
    resume = _report_from(saved, since=since, dry_run=dry_run) if saved else None

    def progress(seen: BackfillProgress) -> None:
        status.total = seen.total or None
        status.done = seen.listed if dry_run else max(0, seen.listed - seen.waiting)
        status.eta_seconds = seen.eta_seconds
        status.counts = {("would_book" if dry_run else "queued"): seen.queued}
        if not dry_run:
            status.counts |= {"booked": seen.booked, "waiting": seen.waiting}
        status.counts |= {"skipped": seen.skipped, "refused": seen.refused}

    report = await backfill(
        services,
        since=since,
        dry_run=dry_run,
        progress=progress,
        wait=not dry_run,
        resume=resume,
        out_of_time=stop,
    )
    progress(report.progress)
    status.counts["not_in_range"] = report.not_in_range
    status.lines = [f"#{r.order_number}: {r.reason}" for r in report.refusals][:200]
    if report.finished and dry_run:
        status.message = _preview_message(services, report)
    return report.finished, {"report": _report_state(report)}


def _preview_message(services: Services, report: BackfillReport) -> str:
    total = f"{report.planned_total:.2f}"
    if not report.progress.queued:
        return Message("total of the invoices that would be booked: %(total)s", total=total)
    minutes = math.ceil(report.import_seconds(services.settings.rate_limit) / 60)
    return Message(
        "total of the invoices that would be booked: %(total)s. Booking them takes about "
        "%(minutes)s min at Moneybird's limit: %(calls)s requests for %(orders)s orders, "
        "%(new)s of them by new customers (and, once, a request per 100 contacts Moneybird "
        "already has).",
        total=total,
        minutes=minutes,
        calls=report.progress.calls,
        orders=report.progress.queued,
        new=report.progress.new_customers,
    )


_RUNNERS: Final = {
    "products-preview": _products,
    "products": _products,
    "history-preview": _history,
    "history": _history,
}
