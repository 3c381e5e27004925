"""woobird's one-round-trip enqueue must be indistinguishable from arq's own."""

from __future__ import annotations

from datetime import UTC, datetime

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from app.constants import JOB_BOOK_ORDER
from app.queue import enqueue_order, enqueue_orders, order_job_id

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
    assert await enqueue_order(redis, order_id=3, date_modified=MODIFIED, reason="webhook")
    assert await enqueue_orders(redis, [(3, MODIFIED, "webhook"), (4, MODIFIED, "webhook")]) == {4}
    assert not await enqueue_order(redis, order_id=4, date_modified=MODIFIED, reason="webhook")
    assert await redis.zcard("arq:queue") == 2


async def test_a_kept_result_blocks_the_id_like_arq_does(redis: ArqRedis) -> None:
    await redis.set("arq:result:" + order_job_id(5, MODIFIED), b"done")
    assert await enqueue_orders(redis, [(5, MODIFIED, "webhook")]) == set()
    assert await redis.zcard("arq:queue") == 0


async def test_nothing_to_queue_costs_nothing(redis: ArqRedis) -> None:
    assert await enqueue_orders(redis, []) == set()
