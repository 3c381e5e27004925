"""The reconciliation poll: the part of correctness that webhooks cannot give.

WooCommerce sends each delivery once, coalesces them, sometimes sends none, and disables a webhook
after seven failures in a row. So every `RECONCILE_INTERVAL_SECONDS` one worker (arq cron,
`unique`) does a pass:

    1. list orders modified since the watermark − overlap, oldest first, page by page, and feed
       each through `accept_order` — the webhook's own idempotent path, which skips versions
       already booked or queued;
    2. queue again the ledger rows that wait for a job that no longer exists (Redis flushed,
       or a worker killed while Redis lost its state);
    3. look at woobird's webhook in the shop and re-activate it when WooCommerce disabled it.

The watermark lives in the ledger (SQL), is measured on the shop's clock (the latest
`date_modified` seen), and moves only after a pass saw every order it was shown, so downtime of any
length, a Redis flush or a dropped delivery heals on the next pass.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from arq.connections import ArqRedis
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.alerts import alert, check_reconcile_staleness
from app.booking import ledger
from app.booking.intake import OpenInvoiceRule, accept_order, listed_statuses
from app.booking.payments_poll import poll_open_invoices
from app.booking.refunds import requeue_refunds
from app.connection_scope import connection_of_sessions
from app.connections import booking_connection_ids
from app.constants import (
    ENVIRONMENT_CONNECTION_ID,
    JOB_RECONCILE_CONNECTION,
    RECONCILE_LOCK_KEY,
    RECONCILE_OVERLAP_SECONDS,
    RECONCILE_PASS_BUDGET_SECONDS,
    RECONCILE_STALE_BOOKING_MARGIN,
    REQUEUE_BATCH,
    WEBHOOK_PATH,
)
from app.db import transaction
from app.i18n import Message
from app.queue import connection_key, connection_kwargs, enqueue_each, order_job, wake_workers
from app.redaction import scrub
from app.runtime import Services, Stores, services_of
from app.schema import Connection, OrderRecord, OrderState
from app.woocommerce.errors import WooCommerceError
from app.woocommerce.models import Webhook

log = structlog.get_logger("woobird.reconcile")

REASON = "reconcile"


@dataclass
class WebhookCheck:
    """What the pass found out about woobird's webhook in the shop."""

    found: bool
    webhook_id: int | None = None
    status: str | None = None  # as found, before any repair
    reactivated: bool = False
    problem: str | None = None


@dataclass
class ReconcileReport:
    started_at: datetime
    window_start: datetime
    watermark: datetime  # after the pass (unchanged when it did not move)
    complete: bool = True  # False: the pass ran out of time or the listing shifted; next pass goes on
    pages: int = 0
    seen: int = 0
    queued: int = 0
    duplicates: int = 0
    ignored: int = 0
    requeued: int = 0
    payments: int = 0  # open invoices Moneybird showed (part) paid, queued for settling
    webhook: WebhookCheck | None = None
    seconds: float = 0.0
    queued_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("started_at", "window_start", "watermark"):
            data[key] = getattr(self, key).isoformat()
        return data


async def reconcile_job(ctx: dict[str, Any]) -> dict[str, Any]:
    """The arq cron body; a failed pass is logged and recorded, and the next slot tries again."""
    services = services_of(ctx)
    lock = services.redis.lock(
        connection_key(RECONCILE_LOCK_KEY, services.connection_id), timeout=RECONCILE_PASS_BUDGET_SECONDS * 2
    )
    if not await lock.acquire(blocking=False):
        log.info("reconcile skipped: another pass is still running")
        return {"ok": False, "skipped": "another pass is still running"}
    try:
        report = await reconcile(services)
    except Exception as exc:  # the cron has max_tries=1: the next slot is the retry
        log.exception("reconcile failed", error=str(exc))
        await check_reconcile_staleness(services)
        return {"ok": False, "error": str(exc)}
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning("reconcile lock expired before the pass finished")
    await check_reconcile_staleness(services)  # a success releases the stale alert for next time
    return {"ok": True, **report.as_dict()}


async def spread_reconciliations(
    redis: ArqRedis, sessions: async_sessionmaker[AsyncSession], *, interval_seconds: int, now: float
) -> int:
    """Queue the pass of every other booking connection for this interval, spread evenly over it
    (connection 1's runs now, the i-th of n others i/(n+1) of the interval later), not all at the
    same second. One job per connection and slot, however many workers ask; returns how many."""
    return await spread_connection_jobs(
        redis,
        sessions,
        function=JOB_RECONCILE_CONNECTION,
        slot_name="reconcile",
        interval_seconds=interval_seconds,
        now=now,
    )


async def spread_connection_jobs(
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    *,
    function: str,
    slot_name: str,
    interval_seconds: int,
    now: float,
) -> int:
    """Queue `function` for every booking connection other than 1, the i-th of n i/(n+1) of the
    interval from now, with the job id `c<id>:<slot_name>:<slot>`: one per connection and slot,
    however many workers' crons ask. Returns how many were queued."""
    async with sessions() as session:
        others = await booking_connection_ids(session)
    slot = int(now // interval_seconds)
    queued = 0
    for position, connection_id in enumerate(others, start=1):
        job = await redis.enqueue_job(
            function,
            _job_id=connection_key(f"{slot_name}:{slot}", connection_id),
            _defer_by=interval_seconds * position / (len(others) + 1),
            **connection_kwargs(connection_id),
        )
        queued += job is not None
    if queued:
        await wake_workers(redis)  # an idle worker waiting past the first slot's due time looks again
    return queued


async def reconcile(services: Services, *, now: datetime | None = None) -> ReconcileReport:
    """One pass; raises (after recording the error in the ledger) when the shop or a store fails."""
    started = time.monotonic()
    now = now or schema.utcnow()
    since = await effective_since(services)
    watermark = await _watermark(services) or since
    report = ReconcileReport(
        started_at=now,
        window_start=watermark - timedelta(seconds=RECONCILE_OVERLAP_SECONDS),
        watermark=watermark,
    )
    try:
        latest = await _feed_orders(
            services, report, since=since, deadline=started + RECONCILE_PASS_BUDGET_SECONDS
        )
        report.requeued = await requeue_waiting(services, now=now)
        report.requeued += await requeue_refunds(services)
        report.payments = await poll_open_invoices(services)
    except Exception as exc:
        await _save_state(
            services, {ledger.RECONCILE_LAST_ERROR: scrub(f"{now.isoformat()} {type(exc).__name__}: {exc}")}
        )
        raise
    report.webhook = await check_webhook(services)
    if latest is not None and latest > watermark:
        report.watermark = latest
    await _save_state(
        services,
        {
            ledger.RECONCILE_WATERMARK: report.watermark.isoformat(),
            ledger.RECONCILE_LAST_SUCCESS: now.isoformat(),
        },
    )
    report.seconds = round(time.monotonic() - started, 3)
    log.info(
        "reconcile pass",
        window_start=report.window_start.isoformat(),
        watermark=report.watermark.isoformat(),
        complete=report.complete,
        pages=report.pages,
        seen=report.seen,
        queued=report.queued,
        requeued=report.requeued,
        payments=report.payments,
        seconds=report.seconds,
    )
    return report


async def effective_since(services: Services) -> datetime:
    """SYNC_SINCE, or the moment woobird first ran against this database."""
    if services.settings.sync_since is not None:
        return services.settings.sync_since
    async with transaction(services.sessions) as session:
        return await ledger.first_run_at(session)


async def _watermark(services: Services) -> datetime | None:
    async with services.sessions() as session:
        stored = await ledger.get_state(session, ledger.RECONCILE_WATERMARK)
    return datetime.fromisoformat(stored) if stored else None


async def _save_state(services: Services, values: dict[str, str]) -> None:
    async with transaction(services.sessions) as session:
        for key, value in values.items():
            await ledger.set_state(session, key, value)


async def _feed_orders(
    services: Services, report: ReconcileReport, *, since: datetime, deadline: float
) -> datetime | None:
    """Accept every listed order; return the watermark the pass earned (None: it may not move)."""
    settings = services.settings
    ids: set[int] = set()
    latest: datetime | None = None
    first_total: int | None = None
    rows_read = 0
    async for page in services.shop.iter_orders(
        modified_after=report.window_start,
        statuses=listed_statuses(settings.sync_order_statuses, OpenInvoiceRule.from_settings(settings)),
    ):
        report.pages += 1
        first_total = page.total if first_total is None else first_total
        rows_read += len(page.orders)
        for order in page.orders:
            if order.id in ids:
                continue
            ids.add(order.id)
            result = await accept_order(
                order,
                sessions=services.sessions,
                redis=services.redis,
                statuses=settings.sync_order_statuses,
                since=since,
                reason=REASON,
                open_invoices=OpenInvoiceRule.from_settings(settings),
            )
            _count(report, result.outcome, order.id)
            if order.date_modified_gmt is not None and (latest is None or order.date_modified_gmt > latest):
                latest = order.date_modified_gmt
        if time.monotonic() > deadline:
            report.complete = False  # ran out of time: what was read counts, the rest comes next pass
            log.warning("reconcile pass stopped early; the next pass continues", pages=report.pages)
            break
    report.seen = len(ids)
    expected = min(first_total or 0, rows_read)
    if len(ids) < expected:
        # An order saved while we paged moved to the end and pushed another onto a page already
        # read; keep the watermark so the next pass lists this window again (intake de-duplicates).
        report.complete = False
        log.warning("orders shifted between pages; keeping the watermark", seen=len(ids), expected=expected)
        return None
    return latest


def _count(report: ReconcileReport, outcome: str, order_id: int) -> None:
    if outcome == "queued":
        report.queued += 1
        report.queued_ids.append(order_id)
    elif outcome == "duplicate":
        report.duplicates += 1
    else:
        report.ignored += 1


async def requeue_waiting(
    services: Stores,
    *,
    now: datetime,
    every_booking: bool = False,
    reason: str = REASON,
    defer_seconds: float = 0,
    copy_tag: str = "",
    log_each: bool = True,
) -> int:
    """Queue again the orders the ledger says are waiting; arq drops the copy when the job exists.

    `log_each` says each re-queued order in a line of its own; after a loss of Redis the caller
    says it for all of them in one.

    A Redis flush loses queued jobs but not the ledger. Rows in `booking` are taken only once
    they are older than any live job could be, so a running booking is left alone — unless
    `every_booking`: right after Redis lost its data (app.booking.redis_marker) every row in `booking`
    is taken, since its job is gone from Redis too, and a job still running holds its order's lock
    again by the time the copy starts (`defer_seconds` later).
    """
    waiting_booking = OrderRecord.state == OrderState.BOOKING.value
    if not every_booking:
        # Longer than any job may run, so a row still in `booking` belongs to a worker that died.
        stale = now - timedelta(
            seconds=services.settings.worker_job_timeout_seconds + RECONCILE_STALE_BOOKING_MARGIN
        )
        waiting_booking = waiting_booking & (OrderRecord.updated_at < stale)
    query = (
        select(OrderRecord.order_id, OrderRecord.date_modified)
        .where((OrderRecord.state == OrderState.QUEUED.value) | waiting_booking)
        .order_by(OrderRecord.updated_at)
        .limit(REQUEUE_BATCH)
    )
    async with services.sessions() as session:
        waiting = (await session.execute(query)).all()
    jobs = [
        order_job(
            order_id, date_modified, reason=reason, connection_id=connection_of_sessions(services.sessions)
        )
        for order_id, date_modified in waiting
    ]
    requeued = await enqueue_each(services.redis, jobs, defer_seconds=defer_seconds, copy_tag=copy_tag)
    if log_each:
        for job in requeued:
            log.warning("order was waiting without a job; queued again", order_id=job.args[0])
    return len(requeued)


# ── the webhook ──────────────────────────────────────────────────────────────────────────────


def is_our_webhook(webhook: Webhook, *, webhook_url: str | None, path: str = WEBHOOK_PATH) -> bool:
    """woobird's webhook: the exact URL when PUBLIC_URL is known, else any order webhook to our path
    (`path`: the connection's, /webhooks/woocommerce/<name> for another than connection 1)."""
    url = webhook.delivery_url.rstrip("/")
    if webhook_url:
        return url == webhook_url.rstrip("/")
    return webhook.topic.startswith("order.") and url.endswith(path)


async def webhook_path(services: Services) -> str:
    """Where this connection's shop delivers: /webhooks/woocommerce, or /webhooks/woocommerce/<name>."""
    if services.connection_id == ENVIRONMENT_CONNECTION_ID:
        return WEBHOOK_PATH
    async with services.sessions() as session:
        name = await session.scalar(select(Connection.name).where(Connection.id == services.connection_id))
    return f"{WEBHOOK_PATH}/{name or services.connection_id}"


async def check_webhook(services: Services) -> WebhookCheck:
    """Find woobird's webhook and re-activate it if WooCommerce disabled it after failed deliveries.

    A webhook an admin *paused* is left paused (a person chose that) but reported.
    """
    path = await webhook_path(services)
    public_url = services.settings.public_url
    webhook_url = f"{public_url.rstrip('/')}{path}" if public_url else None
    try:
        hooks = [
            h
            for h in await services.shop.list_webhooks()
            if is_our_webhook(h, webhook_url=webhook_url, path=path)
        ]
    except WooCommerceError as exc:
        log.warning("could not read the shop's webhooks", error=str(exc))
        return WebhookCheck(found=False, problem=f"could not read the shop's webhooks: {exc}")
    if not hooks:
        problem = "no WooCommerce webhook delivers orders to woobird; `woobird webhook install` creates one"
        log.warning("webhook missing", problem=problem)
        return WebhookCheck(found=False, problem=problem)
    active = next((h for h in hooks if h.status == "active"), None)
    if active is not None:
        return WebhookCheck(found=True, webhook_id=active.id, status=active.status)
    hook = hooks[0]
    if hook.status != "disabled":
        return WebhookCheck(
            found=True,
            webhook_id=hook.id,
            status=hook.status,
            problem=f"webhook {hook.id} is {hook.status}; orders arrive only through reconciliation",
        )
    return await _reactivate(services, hook)


async def _reactivate(services: Services, hook: Webhook) -> WebhookCheck:
    try:
        updated = await services.shop.update_webhook(hook.id, status="active")
    except WooCommerceError as exc:
        problem = Message(
            "webhook %(webhook)s is disabled and could not be re-activated: %(error)s",
            webhook=hook.id,
            error=exc,
        )
        log.error("webhook disabled", webhook_id=hook.id, error=str(exc))
        await send_alert(services, cause=f"webhook-reactivation-failed:{hook.id}", message=problem)
        return WebhookCheck(found=True, webhook_id=hook.id, status=hook.status, problem=problem)
    message = Message(
        "WooCommerce had disabled webhook %(webhook)s after failed deliveries; woobird re-activated it "
        "(reconciliation picked up any orders it missed)",
        webhook=hook.id,
    )
    log.warning("webhook re-activated", webhook_id=hook.id, status=updated.status)
    await send_alert(services, cause=f"webhook-reactivated:{hook.id}", message=message)
    return WebhookCheck(
        found=True, webhook_id=hook.id, status=hook.status, reactivated=updated.status == "active"
    )


async def send_alert(services: Services, *, cause: str, message: str) -> None:
    """Tell the operator (ALERT_WEBHOOK_URL / ALERT_EMAIL_TO); `app.alerts` de-duplicates per cause."""
    await alert(services, cause=cause, message=message)
