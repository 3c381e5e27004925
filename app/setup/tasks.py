"""Steps 2 and 5 run long: the product transfer and the backfill (with their dry runs) run in the
background of the web process, and the page shows their progress from Redis.

One task of a kind at a time, across every web process (a lock in Redis, renewed by the task's
heartbeat). A web process that restarts mid-task leaves a heartbeat that goes stale: the page then
says the task was interrupted, and running it again resumes (the product transfer adopts what it
made, the backfill skips what is booked) — the same promise `woobird products` and `woobird
backfill` make after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Final

import structlog
from arq.connections import ArqRedis

from app.booking.backfill import BackfillProgress, backfill
from app.booking.products import transfer_products
from app.clients import transport_overrides
from app.connection_scope import contact_book_of
from app.constants import ENVIRONMENT_CONNECTION_ID, SETUP_TASK_PREFIX
from app.i18n import Message
from app.runtime import Services, build_services, for_connection
from app.settings import Settings
from app.settings_store import administrations_of

log = structlog.get_logger("woobird.setup")

_KEY: Final = SETUP_TASK_PREFIX
LOCK_SECONDS: Final = 30
STALE_SECONDS: Final = 20.0
KEEP_SECONDS: Final = 24 * 3600
KINDS: Final = ("products-preview", "products", "history-preview", "history")
_running: set[asyncio.Task[None]] = set()


@dataclass
class TaskStatus:
    kind: str
    state: str = "running"  # running | done | failed | interrupted
    done: int = 0
    total: int | None = None
    eta_seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # refusals, with their reasons
    message: str = ""
    updated: float = field(default_factory=time.time)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (100 if self.state == "done" else 0)


# A runner updates the status it is given; the heartbeat writes it to Redis every second.
Runner = Callable[[TaskStatus], Awaitable[None]]


async def read_task(redis: ArqRedis, kind: str) -> TaskStatus | None:
    raw = await redis.get(_KEY + kind)
    if raw is None:
        return None
    status = TaskStatus(**json.loads(raw))
    if status.state == "running" and time.time() - status.updated > STALE_SECONDS:
        status.state = "interrupted"
        status.message = "woobird restarted while this ran; start it again to go on where it stopped"
    return status


async def start_task(redis: ArqRedis, kind: str, runner: Runner) -> bool:
    """Start `runner` in the background; False when a task of this kind is already running."""
    if not await redis.set(_KEY + kind + ":lock", "1", nx=True, ex=LOCK_SECONDS):
        return False
    status = TaskStatus(kind=kind)
    await _save(redis, status)
    task = asyncio.create_task(_run(redis, status, runner))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return True


async def _save(redis: ArqRedis, status: TaskStatus) -> None:
    status.updated = time.time()
    await redis.set(_KEY + status.kind, json.dumps(asdict(status)), ex=KEEP_SECONDS)


async def _run(redis: ArqRedis, status: TaskStatus, runner: Runner) -> None:
    async def heartbeat() -> None:
        while True:
            await _save(redis, status)
            await redis.expire(_KEY + status.kind + ":lock", LOCK_SECONDS)
            await asyncio.sleep(1.0)

    beating = asyncio.create_task(heartbeat())
    try:
        await runner(status)
        status.state = "done"
    except Exception as exc:
        status.state = "failed"
        status.message = f"{type(exc).__name__}: {str(exc)[:300]}"
        log.error("set-up task failed", task=status.kind, error=status.message)
    finally:
        beating.cancel()
        await _save(redis, status)
        await redis.delete(_KEY + status.kind + ":lock")


# ── the two runners ──────────────────────────────────────────────────────────────────────────


async def _services(
    settings: Settings, redis: ArqRedis, *, connection_id: int, environment: Settings | None
) -> Services:
    """The services of the connection being set up: an added shop's book into its own ledger and
    share its administration's contact book (app.connection_scope)."""
    if connection_id == ENVIRONMENT_CONNECTION_ID or environment is None:
        return await build_services(settings, redis, **transport_overrides())
    services = await build_services(
        settings, redis, environment=environment, connection_id=connection_id, **transport_overrides()
    )
    async with services.sessions() as session:
        administrations = await administrations_of(session, first=environment)
    book = contact_book_of(connection_id, administrations)
    return for_connection(services, connection_id=connection_id, contact_book_id=book)


def products_runner(
    settings: Settings,
    redis: ArqRedis,
    *,
    dry_run: bool,
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
    environment: Settings | None = None,
) -> Runner:
    async def run(status: TaskStatus) -> None:
        services = await _services(settings, redis, connection_id=connection_id, environment=environment)
        try:

            def progress(done: int, total: int) -> None:
                status.done, status.total = done, total

            result = await transfer_products(services, dry_run=dry_run, progress=progress)
        finally:
            await services.aclose()
        status.counts = {
            "created": len(result.created),
            "adopted": len(result.adopted),
            "without_sku": result.without_sku,
            "refused": len(result.refused),
        }
        status.lines = [f"{sku}: {reason}" for sku, reason in result.refused][:200]

    return run


def history_runner(
    settings: Settings,
    redis: ArqRedis,
    *,
    since: datetime,
    dry_run: bool,
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
    environment: Settings | None = None,
) -> Runner:
    async def run(status: TaskStatus) -> None:
        services = await _services(settings, redis, connection_id=connection_id, environment=environment)

        def progress(seen: BackfillProgress) -> None:
            status.total = seen.total or None
            status.done = seen.listed if dry_run else max(0, seen.listed - seen.waiting)
            status.eta_seconds = seen.eta_seconds
            status.counts = {("would_book" if dry_run else "queued"): seen.queued}
            if not dry_run:
                status.counts |= {"booked": seen.booked, "waiting": seen.waiting}
            status.counts |= {"skipped": seen.skipped, "refused": seen.refused}

        try:
            result = await backfill(
                services, since=since, dry_run=dry_run, progress=progress, wait=not dry_run
            )
        finally:
            await services.aclose()
        progress(result.progress)
        status.counts["not_in_range"] = result.not_in_range
        status.lines = [f"#{r.order_number}: {r.reason}" for r in result.refusals][:200]
        if dry_run:
            total = f"{result.planned_total:.2f}"
            status.message = Message("total of the invoices that would be booked: %(total)s", total=total)
            if result.progress.queued:
                minutes = math.ceil(result.import_seconds(settings.rate_limit) / 60)
                status.message = Message(
                    "total of the invoices that would be booked: %(total)s. Booking them takes about "
                    "%(minutes)s min at Moneybird's limit: %(calls)s requests for %(orders)s orders, "
                    "%(new)s of them by new customers (and, once, a request per 100 contacts Moneybird "
                    "already has).",
                    total=total,
                    minutes=minutes,
                    calls=result.progress.calls,
                    orders=result.progress.queued,
                    new=result.progress.new_customers,
                )

    return run
