"""An idle worker waits to be woken instead of polling Redis, and still finds every job (app.wake)."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import default_queue_name, in_progress_key_prefix
from arq.typing import WorkerCoroutine
from arq.worker import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking.redis_marker import watch
from app.constants import JOB_BOOK_ORDER, REDIS_MARKER_KEY, WORKER_WAKE_CHANNEL
from app.db import create_engine, session_factory
from app.queue import enqueue, enqueue_orders, order_job
from app.settings import Settings
from app.wake import QUEUE_IDLE, HeadStartDelay, WakingWorker, configure_worker_logging
from tests.conftest import make_settings

MODIFIED = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
# Far longer than any test waits: a job found within a test was found by a wake-up, not a poll.
NEVER_SECONDS = 3600.0
WAIT_SECONDS = 30.0


def _booking_worker(redis: ArqRedis, book: WorkerCoroutine, **options: Any) -> WakingWorker:
    """A waking worker whose only job is `book`, polling fast, keeping no results."""
    return WakingWorker(
        functions=[func(book, name=JOB_BOOK_ORDER)],
        redis_pool=redis,
        handle_signals=False,
        poll_delay=0.01,
        keep_result=0,
        **options,
    )


@asynccontextmanager
async def idle_worker(
    redis: ArqRedis, *, idle_poll_seconds: float
) -> AsyncIterator[tuple[WakingWorker, list[int]]]:
    """A waking worker whose only job records the order ids it ran, once it idles subscribed."""
    ran: list[int] = []

    async def book(ctx: dict[str, Any], order_id: int, reason: str) -> None:
        ran.append(order_id)

    worker = _booking_worker(redis, book, idle_poll_seconds=idle_poll_seconds)
    task = asyncio.create_task(worker.async_run())
    try:
        await until(lambda: _subscribed_and_idle(worker, redis))
        yield worker, ran
    finally:
        task.cancel()  # arq's Worker.close() would close the test's Redis client
        await asyncio.gather(task, return_exceptions=True)
        await worker.stop_listening()


async def _subscribed_and_idle(worker: WakingWorker, redis: ArqRedis) -> bool:
    subscribers = dict(await redis.pubsub_numsub(WORKER_WAKE_CHANNEL))
    return bool(subscribers.get(WORKER_WAKE_CHANNEL.encode())) and worker.ctx.get(QUEUE_IDLE) is True


async def until(done: Callable[[], Awaitable[bool]], *, within: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + within
    while not await done():
        assert time.monotonic() < deadline, f"not done within {within:.0f} s"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("one_by_one", [True, False], ids=["enqueue", "enqueue_orders"])
async def test_a_job_queued_while_the_worker_idles_is_picked_up_at_once(
    redis: ArqRedis, one_by_one: bool
) -> None:
    async with idle_worker(redis, idle_poll_seconds=NEVER_SECONDS) as (worker, ran):
        if one_by_one:
            await enqueue(redis, order_job(7, MODIFIED, reason="webhook"))
        else:
            await enqueue_orders(redis, [(7, MODIFIED, "webhook"), (8, MODIFIED, "webhook")])

        async def booked() -> bool:
            return 7 in ran

        await until(booked)
        assert worker.wake_ups >= 1


async def test_a_job_queued_without_a_wake_up_is_found_by_the_slow_poll(redis: ArqRedis) -> None:
    async with idle_worker(redis, idle_poll_seconds=0.5) as (worker, ran):
        await redis.enqueue_job(JOB_BOOK_ORDER, 9, "queued by arq itself", _job_id="plain")

        async def booked() -> bool:
            return 9 in ran

        await until(booked)
        assert worker.wake_ups == 0


async def test_a_wake_up_lost_with_the_subscription_costs_a_poll_not_the_job(redis: ArqRedis) -> None:
    async with idle_worker(redis, idle_poll_seconds=0.5) as (worker, ran):
        killed = await redis.client_kill_filter(_type="pubsub")
        assert killed == 1
        # Nobody listens now: the wake-up this publishes reaches no one.
        await enqueue(redis, order_job(10, MODIFIED, reason="webhook"))

        async def booked() -> bool:
            return 10 in ran

        await until(booked)
        assert worker.wake_ups == 0


async def test_an_idle_worker_wakes_for_a_deferred_job_when_it_is_due(redis: ArqRedis) -> None:
    async with idle_worker(redis, idle_poll_seconds=NEVER_SECONDS) as (worker, ran):
        await redis.enqueue_job(JOB_BOOK_ORDER, 11, "retry", _job_id="deferred", _defer_by=1)
        # arq's own enqueue publishes nothing; an order queued meanwhile wakes the worker, which
        # then sees the deferred job and waits for its due time, not for the slow poll.
        await enqueue(redis, order_job(12, MODIFIED, reason="webhook"))

        async def booked() -> bool:
            return 11 in ran

        await until(booked)
        assert ran == [12, 11]


@asynccontextmanager
async def held_worker(redis: ArqRedis) -> AsyncIterator[tuple[WakingWorker, list[int], asyncio.Event]]:
    """A waking worker whose job records its order id and then runs until `release` is set."""
    ran: list[int] = []
    release = asyncio.Event()

    async def book(ctx: dict[str, Any], order_id: int, reason: str) -> None:
        ran.append(order_id)
        await release.wait()

    worker = WakingWorker(
        functions=[func(book, name=JOB_BOOK_ORDER)], redis_pool=redis, handle_signals=False, keep_result=0
    )
    try:
        yield worker, ran, release
    finally:
        release.set()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)


async def test_a_due_job_is_claimed_once_and_its_own_worker_does_not_ask_about_it_again(
    redis: ArqRedis,
) -> None:
    await redis.enqueue_job(JOB_BOOK_ORDER, 20, "webhook", _job_id="due")
    async with held_worker(redis) as (worker, ran, release):
        await worker.start_jobs([b"due"])
        await until(lambda: _ran(ran, 20))
        assert await redis.pttl(in_progress_key_prefix + "due") > 0
        # Were Redis asked again, the job would look free now and start a second time beside itself.
        await redis.delete(in_progress_key_prefix + "due")
        await worker.start_jobs([b"due"])
        assert worker.job_counter == 1
        release.set()
        await worker.tasks["due"]
    assert ran == [20]
    assert not await redis.exists(default_queue_name, "arq:job:due")


@pytest.mark.parametrize("why", ["another worker runs it", "put off", "ended"])
async def test_a_job_not_to_be_started_is_left_as_arq_leaves_it(redis: ArqRedis, why: str) -> None:
    await redis.enqueue_job(
        JOB_BOOK_ORDER, 21, "webhook", _job_id="job", _defer_by=60 if why == "put off" else None
    )
    if why == "another worker runs it":
        await redis.psetex(in_progress_key_prefix + "job", 60_000, b"1")
    if why == "ended":
        await redis.zrem(default_queue_name, "job")
    async with held_worker(redis) as (worker, ran, _):
        await worker.start_jobs([b"job"])
        assert worker.job_counter == 0
        assert not worker.tasks
    assert ran == []
    assert await redis.exists(in_progress_key_prefix + "job") == (why == "another worker runs it")


async def _ran(ran: list[int], order_id: int) -> bool:
    return order_id in ran


async def test_an_idle_process_looks_for_the_redis_marker_only_now_and_then(
    redis: ArqRedis, sqlite_url: str
) -> None:
    settings = make_settings(database_url=sqlite_url)
    engine = create_engine(settings.database_url)
    stores = Stores(settings=settings, sessions=session_factory(engine), redis=redis)
    busy = False

    def is_busy() -> bool:
        return busy

    stop = asyncio.Event()
    task = asyncio.create_task(
        watch(lambda: stores, every=0.01, busy=is_busy, idle_every=NEVER_SECONDS, stop=stop)
    )
    try:
        await until(lambda: redis.exists(REDIS_MARKER_KEY))
        await redis.delete(REDIS_MARKER_KEY)
        await asyncio.sleep(0.3)  # thirty ticks: an idle process does not look
        assert not await redis.exists(REDIS_MARKER_KEY)
        busy = True
        await until(lambda: redis.exists(REDIS_MARKER_KEY))
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_SECONDS):
            await task  # it ends by itself once told to
        await engine.dispose()


@dataclass
class Stores:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis


async def test_arq_s_line_for_a_fresh_order_tells_its_true_wait_not_its_head_start(
    redis: ArqRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh order's score lies FRESH_HEAD_START_SECONDS before it was queued (app.queue); the
    worker's log line must still say how long the order waited."""
    # arq's handlers stay out of the test process; the filter is what is tried.
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)
    configure_worker_logging()
    try:
        assert await enqueue_orders(redis, [(41, MODIFIED, "webhook")]) == {41}
        await asyncio.sleep(1.5)  # long enough for arq to say "delayed"
        assert await enqueue_orders(redis, [(42, MODIFIED, "webhook")]) == {42}

        async def book(ctx: dict[str, Any], order_id: int, reason: str) -> None:
            return None

        worker = _booking_worker(redis, book, burst=True)
        with caplog.at_level(logging.INFO, logger="arq.worker"):
            await worker.async_run()
        started = {
            int(found[1]): record.getMessage()
            for record in caplog.records
            if (found := re.search(r"book_order\((\d+),", record.getMessage())) and "→" in record.getMessage()
        }
        waited = re.search(r" delayed=(\d+\.\d+)s", started[41])
        assert waited, started[41]
        assert 1.2 < float(waited[1]) < 60  # the true wait, not an hour and more
        assert "delayed" not in started[42]  # started at once: nothing to say
    finally:
        logging.getLogger("arq.worker").filters.clear()


@pytest.mark.parametrize(
    ("since_queued", "delayed", "said"),
    [
        (3.0, 3603.0, " delayed=3.00s"),  # a fresh order that waited 3 s
        (0.5, 3600.5, ""),  # started at once: arq says nothing under 1.2 s, nor should the line
        (5400.0, 5400.0, " delayed=5400.00s"),  # a backlog order that truly waited 90 minutes
        (4000.0, 30.0, " delayed=30.00s"),  # a retry, due later than it was first queued
    ],
)
def test_only_the_head_start_is_taken_out_of_arq_s_delay(
    since_queued: float, delayed: float, said: str
) -> None:
    record = logging.LogRecord(
        "arq.worker",
        logging.INFO,
        __file__,
        1,
        "%6.2fs → %s(%s)%s",
        (since_queued, "order:7:1", "7, 'webhook'", f" delayed={delayed:0.2f}s"),
        None,
    )
    assert HeadStartDelay().filter(record)
    assert record.args == (since_queued, "order:7:1", "7, 'webhook'", said)
