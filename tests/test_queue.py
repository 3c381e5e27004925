"""woobird's one-round-trip enqueue must be indistinguishable from arq's own."""

from __future__ import annotations

import asyncio
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job, JobStatus
from arq.worker import Worker, func
from redis.exceptions import RedisError

from app.constants import JOB_BOOK_ORDER, JOB_SHOP_NOTE
from app.queue import enqueue, enqueue_jobs, enqueue_orders, order_job, order_job_id, redis_settings
from tests.chaos.rig import RedisServer

MODIFIED = datetime(2026, 11, 2, 9, 35, tzinfo=UTC)


async def test_jobs_queued_in_one_round_trip_read_back_as_arq_jobs(redis: ArqRedis) -> None:
    queued = await enqueue_orders(redis, [(1, MODIFIED, "webhook"), (2, MODIFIED, "reconcile")])
    assert queued == {1, 2}
    info = await Job(order_job_id(2, MODIFIED), redis).info()
    assert info is not None
    assert info.function == JOB_BOOK_ORDER
    assert info.args == (2, "reconcile")
    assert await Job(order_job_id(1, MODIFIED), redis).status() == JobStatus.queued


async def test_a_job_id_that_exists_is_not_queued_twice_either_way(redis: ArqRedis) -> None:
    assert await enqueue(redis, order_job(3, MODIFIED, reason="webhook"))
    assert await enqueue_orders(redis, [(3, MODIFIED, "webhook"), (4, MODIFIED, "webhook")]) == {4}
    assert not await enqueue(redis, order_job(4, MODIFIED, reason="webhook"))
    assert await redis.zcard("arq:queue") == 2


async def test_a_kept_result_blocks_the_id_like_arq_does(redis: ArqRedis) -> None:
    await redis.set("arq:result:" + order_job_id(5, MODIFIED), b"done")
    assert await enqueue_orders(redis, [(5, MODIFIED, "webhook")]) == set()
    assert await redis.zcard("arq:queue") == 0


async def test_any_job_queued_in_one_round_trip_reads_back_with_its_keyword_arguments(
    redis: ArqRedis,
) -> None:
    jobs = [("note:1", JOB_SHOP_NOTE, (1, "invoice", "77"), {"connection_id": 2})]
    assert await enqueue_jobs(redis, jobs) == ["note:1"]
    info = await Job("note:1", redis).info()
    assert info is not None
    assert (info.function, info.args, info.kwargs) == (
        JOB_SHOP_NOTE,
        (1, "invoice", "77"),
        {"connection_id": 2},
    )
    assert await enqueue_jobs(redis, jobs) == []  # arq's rule: a known id is not queued again


async def test_nothing_to_queue_costs_nothing(redis: ArqRedis) -> None:
    assert await enqueue_orders(redis, []) == set()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on the PATH")
async def test_the_workers_connection_rides_out_a_redis_restart(tmp_path: Path) -> None:
    # arq's worker exits when a connect is refused while it finishes a job; its running jobs die
    # with it. The worker's connection must wait for a Redis that is starting again.
    server = RedisServer(log_dir=tmp_path)
    server.start()
    pool = await create_pool(redis_settings(server.url))
    try:
        await pool.set("before", "1")
        server.stop()
        with pytest.raises(RedisError):  # the connection Redis dropped: that command is lost
            await pool.get("before")
        later = threading.Timer(0.5, server.start)  # the next one connects while Redis is away
        later.start()
        try:
            assert await asyncio.wait_for(pool.set("after", "1"), 10)
        finally:
            later.join()
        assert await pool.get("after") == b"1"
    finally:
        await pool.aclose()
        server.stop()


async def test_a_fresh_order_is_started_before_the_backlog_queued_ahead_of_it(redis: ArqRedis) -> None:
    """A history import queues its orders by the hundred; an order the shop sends a moment later is
    the next job a worker starts, not the hundred-and-first."""
    backlog = [(order_id, MODIFIED, "backfill") for order_id in range(100, 120)]
    assert len(await enqueue_orders(redis, backlog, backlog=True)) == 20
    await asyncio.sleep(0.01)  # the fresh order comes later, by the clock too
    assert await enqueue_orders(redis, [(7, MODIFIED, "webhook")]) == {7}

    started: list[int] = []

    async def book(ctx: dict[str, object], order_id: int, reason: str) -> None:
        started.append(order_id)

    worker = Worker(
        functions=[func(book, name=JOB_BOOK_ORDER)],
        redis_pool=redis,
        burst=True,
        max_burst_jobs=3,
        max_jobs=1,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
    )
    await worker.async_run()
    assert started[:2] == [7, 100], started  # the first two one worker slot started
    # The backlog keeps its own order among itself, and its real wait is what arq reports.
    info = await Job(order_job_id(102, MODIFIED), redis).info()
    assert info is not None
    assert info.score is not None
    assert abs(info.score - info.enqueue_time.timestamp() * 1000) < 1000
