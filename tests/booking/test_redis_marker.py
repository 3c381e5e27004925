"""Healing in seconds after Redis lost its data: the marker the workers look for (app.booking.redis_marker).

No reconciliation pass runs in these tests (the worker has no cron): whatever gets booked after the
flush was queued again by the marker check alone, well inside any RECONCILE_INTERVAL_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.worker import Worker
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from app.booking import ledger
from app.booking.redis_marker import REASON, WATCH_TASK, RedisMarker, Requeued, start_watching, stop_watching
from app.booking.refunds import queue_refunds
from app.constants import ORDER_LOCK_PREFIX, QUEUE_NAME, REDIS_MARKER_KEY
from app.jobs import exclusively
from app.main import create_app
from app.metrics_refresh import refresh_gauges
from app.moneybird.models import Contact, ContactCreate
from app.schema import OrderState, OrderStep, RefundRecord, RefundState
from tests.booking.test_healing import _add, _assert_booked_once, _customer
from tests.harness import Harness, open_harness, running
from workers.functions import job_functions

# What the test allows for the whole heal: the check each second, the grace, the bookings. The
# reconciliation pass it replaces would have come after RECONCILE_INTERVAL_SECONDS (300 by default)
# and taken the order left in `booking` only after the job timeout + 60 s.
HEAL_WITHIN_SECONDS = 20.0


@asynccontextmanager
async def _worker(harness: Harness) -> AsyncIterator[None]:
    """A long-running worker as the Procfile starts it (the marker watch included), minus the cron."""
    worker = Worker(
        functions=job_functions(),
        redis_pool=harness.redis,
        ctx={"services": harness.services, "owns_services": False},
        on_startup=_start,
        on_shutdown=stop_watching,
        handle_signals=False,
        poll_delay=0.02,
        keep_result=0,
        max_tries=25,
        job_timeout=60,
    )
    try:
        async with running(worker):
            yield
    finally:
        await stop_watching(worker.ctx)


async def _start(ctx: dict[str, Any]) -> None:
    start_watching(ctx)


async def _until(done: Callable[[], Awaitable[bool]], *, within: float) -> float:
    started = time.monotonic()
    while not await done():
        elapsed = time.monotonic() - started
        assert elapsed < within, f"not healed within {within:.0f} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def _refund(harness: Harness, refund_id: int) -> RefundRecord:
    async with harness.sessions() as session:
        record = await session.get(RefundRecord, (1, refund_id))
    assert record is not None
    return record


async def test_orders_and_refunds_queued_or_being_booked_when_redis_is_flushed_are_booked_in_seconds(
    harness: Harness,
) -> None:
    # A booked order, refunded since.
    refunded = _add(harness, 7602, customer=_customer("Bram"))
    await harness.deliver(7602)
    await harness.run_worker()
    # An order being booked: Moneybird made the invoice, the answer was lost, the retry sits in Redis.
    interrupted = _add(harness, 7601, customer=_customer("Anna"))
    await harness.deliver(7601)
    harness.moneybird.fail_next("POST /sales_invoices", kind="lost")
    await harness.run_worker(max_jobs=1)
    # The refund, queued (what the order's job does when it sees it).
    refund = harness.shop.add_refund(7602, amount=Decimal("5.00"))
    assert await queue_refunds(harness.services, order=await harness.services.shop.get_order(7602)) == 1
    # Orders queued and not yet picked up.
    queued = [
        _add(harness, order_id, customer=_customer(name))
        for order_id, name in ((7603, "Cas"), (7604, "Dirk"))
    ]
    for document in queued:
        await harness.deliver(int(document["id"]))

    assert await RedisMarker().check(harness.services) is not None  # the first look writes the marker
    assert await harness.redis.get(REDIS_MARKER_KEY) is not None
    record = await harness.record(7601)
    assert record is not None
    assert (record.state, record.step) == (OrderState.BOOKING, OrderStep.INVOICE_CREATING)
    assert (await _refund(harness, int(refund["id"]))).state == RefundState.QUEUED
    assert await harness.queued() == 4

    await harness.redis.flushdb()  # Redis restarted without persistence: jobs, locks, marker gone
    assert await harness.queued() == 0

    async def all_booked() -> bool:
        records = [await harness.record(order_id) for order_id in (7601, 7602, 7603, 7604)]
        refund_state = (await _refund(harness, int(refund["id"]))).state
        return all(r is not None and r.state == OrderState.BOOKED for r in records) and (
            refund_state == RefundState.BOOKED
        )

    async with _worker(harness):
        seconds = await _until(all_booked, within=HEAL_WITHIN_SECONDS)
    print(f"healed in {seconds:.1f} s")

    for document in (interrupted, refunded, *queued):
        await _assert_booked_once(harness, document)
    assert harness.moneybird.calls("POST /sales_invoices") == 4 + 1  # 7601's lost answer adopted; a credit
    credits = [
        i for i in harness.moneybird.sales_invoices.values() if " refund " in (i.get("reference") or "")
    ]
    assert [Decimal(c["total_price_incl_tax"]) for c in credits] == [Decimal("-5.00")]
    async with harness.sessions() as session:
        assert await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS) is None  # no pass ran
        assert await ledger.get_state(session, ledger.REDIS_LOST_REQUEUED) == "3 orders, 1 refunds"
        events = await ledger.events_for(session, 7603)
    assert any(REASON in event.message for event in events)
    await refresh_gauges(harness.services)  # /metrics shows when it happened
    lost_at = REGISTRY.get_sample_value("woobird_last_redis_loss_timestamp")
    assert lost_at is not None
    assert lost_at > time.time() - 60


async def test_after_a_loss_one_line_says_what_was_queued_again_not_one_per_order(
    harness: Harness,
) -> None:
    for order_id, name in ((7701, "Eva"), (7702, "Fenna"), (7703, "Gijs")):
        _add(harness, order_id, customer=_customer(name))
        await harness.deliver(order_id)
    await harness.redis.flushdb()

    with capture_logs() as logs:
        assert await RedisMarker(grace_seconds=0).check(harness.services) == Requeued(orders=3, refunds=0)

    events = [str(entry["event"]) for entry in logs]
    assert "order was waiting without a job; queued again" not in events
    assert [event for event in events if event.startswith("Redis lost its data")] == [
        "Redis lost its data (woobird's marker was gone): 3 orders and 0 refunds queued again "
        "from the ledger, starting in 0 s"
    ]


async def test_a_marker_seen_before_is_left_alone_and_nothing_is_queued(harness: Harness) -> None:
    _add(harness, 7611, customer=_customer("Anna"))
    await harness.deliver(7611)
    marker = RedisMarker()
    await marker.check(harness.services)
    await harness.redis.delete(QUEUE_NAME)  # the job is gone, but Redis did not lose its data

    assert await marker.check(harness.services) is None
    assert await RedisMarker().check(harness.services) is None  # a process starting up adopts it
    assert await harness.queued() == 0  # left to the reconciliation pass, as before


async def test_one_process_heals_and_the_others_only_take_their_locks_back(harness: Harness) -> None:
    document = _add(harness, 7621, customer=_customer("Anna"))
    await harness.deliver(7621)
    first, second = RedisMarker(), RedisMarker()
    await first.check(harness.services)
    await second.check(harness.services)
    await harness.redis.flushdb()

    healed = [await first.check(harness.services), await second.check(harness.services)]
    assert healed[0] == Requeued(orders=1, refunds=0)
    assert healed[1] is None
    assert await harness.queued() == 1
    await asyncio.sleep(3.1)  # the grace
    await harness.run_worker()
    await _assert_booked_once(harness, document)


async def test_the_job_that_ran_through_the_loss_ending_in_arq_leaves_the_copy_queued(
    harness: Harness,
) -> None:
    # A job running when Redis emptied still ends in arq afterwards: its retry finds its job gone
    # ("job expired") and arq drops every key of that job id — which must not be the copy's.
    document = _add(harness, 7626, customer=_customer("Anna"))
    await harness.deliver(7626)
    [lost_id] = [raw.decode() for raw in await harness.redis.zrange(QUEUE_NAME, 0, -1)]
    marker = RedisMarker(grace_seconds=0)
    await marker.check(harness.services)
    await harness.redis.flushdb()
    assert await marker.check(harness.services) == Requeued(orders=1, refunds=0)

    await harness.redis.delete(job_key_prefix + lost_id, in_progress_key_prefix + lost_id)
    await harness.redis.zrem(QUEUE_NAME, lost_id)  # what arq's finish_failed_job does
    assert await harness.queued() == 1
    await harness.run_worker()
    await _assert_booked_once(harness, document)


async def test_a_booking_still_running_when_redis_is_flushed_keeps_its_order_to_itself(
    harness: Harness,
) -> None:
    # The job is alive in this process (it holds the order's lock) while Redis loses everything.
    document = _add(harness, 7631, customer=_customer("Anna"))
    await harness.deliver(7631)
    marker = RedisMarker(grace_seconds=0)
    await marker.check(harness.services)
    lock_key = f"{ORDER_LOCK_PREFIX}7631"
    async with exclusively(harness.services, lock_key):
        token = await harness.redis.get(lock_key)
        await harness.redis.flushdb()
        assert await harness.redis.get(lock_key) is None

        healed = await marker.check(harness.services)
        assert healed == Requeued(orders=1, refunds=0)
        assert await harness.redis.get(lock_key) == token  # written back before the copy can start
        await harness.run_worker(max_jobs=1)  # the copy finds the order locked and waits
        assert harness.invoices_for("7631") == []
        assert await harness.queued() == 1
    # The running job ended (here: without booking); the copy then books the order, once.
    await harness.run_worker()
    await _assert_booked_once(harness, document)


async def test_a_worker_killed_mid_booking_books_as_soon_as_arq_takes_its_job_up_again(
    database_url: str, redis: ArqRedis
) -> None:
    timeout = 10  # the least WORKER_JOB_TIMEOUT_SECONDS allows
    async with open_harness(database_url=database_url, redis=redis, worker_job_timeout_seconds=timeout) as h:
        document = _add(h, 7641, customer=_customer("Anna"))
        await h.deliver(7641)
        [job_id] = [raw.decode() for raw in await h.redis.zrange(QUEUE_NAME, 0, -1)]
        # The worker that was killed: arq had marked the job in progress for the job timeout + 10 s,
        # and the job held the order's lock. Redis keeps both; no process is left to release them.
        await h.redis.psetex(in_progress_key_prefix + job_id, (timeout + 10) * 1000, b"1")
        killed = exclusively(h.services, f"{ORDER_LOCK_PREFIX}7641")
        await killed.__aenter__()
        try:
            started = time.monotonic()
            worker = Worker(
                functions=job_functions(),
                redis_pool=h.redis,
                ctx={"services": h.services, "owns_services": False},
                burst=True,
                handle_signals=False,
                poll_delay=0.05,
                keep_result=0,
                job_timeout=timeout,
            )
            await worker.async_run()
            seconds = time.monotonic() - started
        finally:
            await killed.__aexit__(None, None, None)  # only forgets it here: the lock expired long ago
        await _assert_booked_once(h, document)
        # arq takes the job up again once its in-progress key expires; the order's lock is gone by then.
        assert seconds < timeout + 10 + 3


async def test_the_web_process_notices_too_while_every_worker_is_down(harness: Harness) -> None:
    # arq's workers exit when Redis goes away; the web process stays and looks for the marker itself.
    document = _add(harness, 7651, customer=_customer("Anna"))
    await harness.deliver(7651)
    app = create_app(harness.settings, watch_redis=True)
    async with app.router.lifespan_context(app):

        async def marker_written() -> bool:
            return await harness.redis.get(REDIS_MARKER_KEY) is not None

        await _until(marker_written, within=5)
        await harness.redis.flushdb()

        async def queued_again() -> bool:
            return await harness.queued() == 1

        await _until(queued_again, within=5)
    await asyncio.sleep(3.1)  # the grace
    await harness.run_worker()
    await _assert_booked_once(harness, document)


async def test_a_job_that_runs_out_of_time_is_tried_again_instead_of_dropped(
    database_url: str, redis: ArqRedis
) -> None:
    # arq counts a job that reaches its timeout as failed and forgets it; the order would then sit
    # in `booking` until a reconciliation pass found it stale, the job timeout + 60 s later.
    timeout = 10
    async with open_harness(database_url=database_url, redis=redis, worker_job_timeout_seconds=timeout) as h:
        document = _add(h, 7661, customer=_customer("Anna"))
        await h.deliver(7661)
        # Moneybird's contact create hangs, once, for longer than this job may run.
        create = h.services.moneybird.create_contact
        hung: list[ContactCreate] = []

        async def hangs_once(contact: ContactCreate) -> Contact:
            if not hung:
                hung.append(contact)
                await asyncio.sleep(timeout + 2)
            return await create(contact)

        h.services.moneybird.create_contact = hangs_once  # type: ignore[method-assign]
        worker = Worker(
            functions=job_functions(),
            redis_pool=h.redis,
            ctx={"services": h.services, "owns_services": False},
            burst=True,
            handle_signals=False,
            poll_delay=0.05,
            keep_result=0,
            job_timeout=timeout,
        )
        await worker.async_run()
        assert (worker.jobs_failed, worker.jobs_retried) == (0, 1)
        await _assert_booked_once(h, document)


async def test_a_stopping_worker_ends_its_watch(harness: Harness) -> None:
    ctx: dict[str, Any] = {"services": harness.services}
    start_watching(ctx)
    watch = ctx[WATCH_TASK]
    await asyncio.sleep(0.05)
    assert not watch.task.done()  # it looks every second for as long as the worker runs

    await stop_watching(ctx)

    assert watch.task.done()
    assert not watch.task.cancelled()  # it ended when told to: no cancellation to be lost
    assert WATCH_TASK not in ctx
