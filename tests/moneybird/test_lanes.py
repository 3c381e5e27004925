"""The limiter's two lanes: fresh requests before the backlog, the backlog put off with appointments.

Every test orders events by what Redis granted, never by how long something took.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.jobs import BACKLOG_SLOTS, BacklogSlots, backlog_slot
from app.moneybird.client import MoneybirdClient
from app.moneybird.lanes import Lane, current_lane, requests_in
from app.moneybird.ratelimit import RateLimitBusy, RateLimiter, limit_key
from app.settings import Settings
from tests.conftest import make_settings
from tests.moneybird import bodies


async def _take(limiter: RateLimiter, lane: Lane, *, waiter: str, granted: list[str]) -> None:
    with requests_in(lane, waiter=waiter):
        await limiter.acquire()
    granted.append(waiter)


async def test_a_backlog_request_is_refused_while_a_fresh_one_waits(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=1, window=30, safety=0, backlog_wait=0)
    await limiter.acquire()  # the one slot is taken for 30 s
    with requests_in(Lane.BACKLOG, waiter="backlog-before"), pytest.raises(RateLimitBusy) as before:
        await limiter.acquire()
    assert before.value.backlog

    # Its job is deferred to the slot; its claim stays, for the job's next try.
    with requests_in(Lane.FRESH, waiter="job-1"), pytest.raises(RateLimitBusy) as waiting:
        await limiter.acquire(max_wait=0)
    assert not waiting.value.backlog
    await mb_redis.delete("woobird:moneybird:calls")  # the slot frees: only the fresh job may have it
    with requests_in(Lane.BACKLOG, waiter="backlog"), pytest.raises(RateLimitBusy) as refused:
        await limiter.acquire()
    assert refused.value.backlog
    with requests_in(Lane.FRESH, waiter="job-1"):
        await limiter.acquire(max_wait=0)
    assert await limiter.usage() == (1, 1, 30)  # the fresh request took it, the backlog one did not


async def test_when_a_slot_frees_the_fresh_request_goes_before_the_backlog_asleep_for_it(
    mb_redis: Redis,
) -> None:
    limiter = RateLimiter(
        mb_redis, limit=1, window=0.5, safety=0, backlog_wait=30, start_wait=30, claim_keep=0.2
    )
    await limiter.acquire()
    granted: list[str] = []
    backlog = asyncio.create_task(_take(limiter, Lane.BACKLOG, waiter="backlog", granted=granted))
    while await mb_redis.zcard("woobird:moneybird:calls:backlog") < 1:  # noqa: ASYNC110 (state in Redis)
        await asyncio.sleep(0.005)  # it is asleep, with its appointment
    fresh = asyncio.create_task(_take(limiter, Lane.FRESH, waiter="fresh", granted=granted))
    await asyncio.gather(backlog, fresh)
    assert granted == ["fresh", "backlog"]


async def test_a_fresh_job_keeps_its_claim_between_its_requests(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=2, window=30, safety=0, backlog_wait=0, claim_keep=30)
    await limiter.acquire()
    await limiter.acquire()
    granted: list[str] = []
    with requests_in(Lane.FRESH, waiter="job-1"), pytest.raises(RateLimitBusy):
        await limiter.acquire(max_wait=0)
    await mb_redis.delete("woobird:moneybird:calls")  # both slots free
    await _take(limiter, Lane.FRESH, waiter="job-1", granted=granted)
    # One slot is still free, but the fresh job's next request may come any moment: not the backlog's.
    with requests_in(Lane.BACKLOG, waiter="backlog"), pytest.raises(RateLimitBusy):
        await limiter.acquire()
    await _take(limiter, Lane.FRESH, waiter="job-1", granted=granted)
    assert granted == ["job-1", "job-1"]


async def test_without_fresh_waiters_the_backlog_takes_free_slots(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=3, window=30, safety=0, backlog_wait=0)
    with requests_in(Lane.BACKLOG, waiter="backlog"):
        for _ in range(3):
            await limiter.acquire()
        with pytest.raises(RateLimitBusy):
            await limiter.acquire()
    assert await limiter.usage() == (3, 3, 30)


async def test_deferred_backlog_requests_get_successive_slots_and_keep_their_turn(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=2, window=30, safety=0, backlog_wait=0, backlog_room=1)
    await limiter.acquire()
    await limiter.acquire()
    slots = sorted(
        float(score) / 1e6 + 30
        for _, score in await mb_redis.zrange("woobird:moneybird:calls", 0, -1, withscores=True)
    )

    async def turn(waiter: str) -> float:
        with requests_in(Lane.BACKLOG, waiter=waiter), pytest.raises(RateLimitBusy) as busy:
            await limiter.acquire()
        return busy.value.retry_at

    first, second, third = await turn("a"), await turn("b"), await turn("c")
    # Each is given the next slot not yet promised: the two that free, then the first one's again.
    assert first == pytest.approx(slots[0], abs=0.1)
    assert second == pytest.approx(slots[1], abs=0.1)
    assert third == pytest.approx(slots[0] + 30, abs=0.1)
    assert await turn("a") == pytest.approx(first, abs=0.1)  # asking again does not lose its place


async def test_a_backlog_run_starts_only_with_room_for_an_order_and_then_goes_on(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=5, window=30, safety=0, backlog_wait=0, backlog_room=4)
    for _ in range(2):
        await limiter.acquire()
    with requests_in(Lane.BACKLOG, waiter="new"), pytest.raises(RateLimitBusy) as refused:
        await limiter.acquire()  # three slots are free, an order may take four
    oldest = min(
        score for _, score in await mb_redis.zrange("woobird:moneybird:calls", 0, -1, withscores=True)
    )
    assert refused.value.retry_at == pytest.approx(oldest / 1e6 + 30, abs=0.1)
    with requests_in(Lane.BACKLOG, waiter="under-way"):
        await mb_redis.zremrangebyrank("woobird:moneybird:calls", 0, 0)  # four free: it starts…
        for _ in range(4):
            await limiter.acquire()  # …and, once under way, takes the last ones one by one
        with pytest.raises(RateLimitBusy):
            await limiter.acquire()
    assert await limiter.usage() == (5, 5, 30)


async def test_a_backlog_run_waits_for_its_start_only_briefly_but_under_way_as_long_as_allowed(
    mb_redis: Redis,
) -> None:
    # Asleep for its start, a backfill's job would hold a worker slot another shop's fresh order
    # needs; under way, being put off would cost it a read-back of what it did.
    limiter = RateLimiter(
        mb_redis, limit=1, window=0.3, safety=0, backlog_wait=30, start_wait=0, backlog_room=1
    )
    await limiter.acquire()  # the one slot is taken
    with requests_in(Lane.BACKLOG, waiter="run"):
        with pytest.raises(RateLimitBusy) as refused:
            await limiter.admit()  # not under way: deferred, though `backlog_wait` would allow 30 s
        assert refused.value.backlog
        await mb_redis.delete("woobird:moneybird:calls")  # the slot frees: the run starts
        await limiter.admit()
        await limiter.acquire()  # takes the one slot
        await limiter.acquire()  # under way: waits for the slot to free rather than being refused
    assert await limiter.usage() == (1, 1, 0.3)


async def test_a_pause_holds_the_backlog_until_it_ends(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=5, window=30, safety=0, backlog_wait=0)
    until = time.time() + 20
    await limiter.pause_until(until)
    with requests_in(Lane.BACKLOG, waiter="a"), pytest.raises(RateLimitBusy) as busy:
        await limiter.acquire()
    assert busy.value.retry_at == pytest.approx(until, abs=0.1)


def test_the_lane_is_fresh_unless_set_and_is_restored_after() -> None:
    assert current_lane().lane == Lane.FRESH
    with requests_in(Lane.FRESH, waiter="job-1"):
        with requests_in(Lane.BACKLOG):
            assert (current_lane().lane, current_lane().waiter) == (Lane.BACKLOG, "job-1")
        assert current_lane().lane == Lane.FRESH
    assert current_lane().waiter is None


async def test_every_key_of_a_limit_carries_the_limit_s_key(mb_redis: Redis) -> None:
    environment = make_settings()
    other: Settings = make_settings(moneybird_administration_id="999999999999999999")
    key, _ = limit_key(other, environment=environment)
    limiter = RateLimiter(
        mb_redis, limit=1, window=30, safety=0, key=key, pause_key=f"{key}:p", backlog_wait=0
    )
    await limiter.acquire()
    with requests_in(Lane.FRESH, waiter="c2:refund:7"), pytest.raises(RateLimitBusy):
        await limiter.acquire(max_wait=0)
    with requests_in(Lane.BACKLOG, waiter="c2:order:1:1"), pytest.raises(RateLimitBusy):
        await limiter.acquire()
    keys = {raw.decode() for raw in await mb_redis.keys("*")}
    assert keys == {key, f"{key}:fresh", f"{key}:backlog"}


async def test_a_run_that_ends_with_promises_unspent_brings_the_next_appointment_forward(
    mb_redis: Redis,
) -> None:
    # An order is promised room for four requests; a returning customer's takes three. The room its
    # end leaves is used now, not a window later when the appointment said.
    queue = "test:queue"
    limiter = RateLimiter(mb_redis, limit=7, window=30, safety=0, backlog_wait=0, backlog_room=4, queue=queue)
    with requests_in(Lane.BACKLOG, waiter="returning"):
        await limiter.admit()
        for _ in range(3):
            await limiter.acquire()
        with requests_in(Lane.BACKLOG, waiter="next"), pytest.raises(RateLimitBusy) as refused:
            await limiter.admit()  # 3 free, one of them promised: no room for an order
        assert refused.value.retry_at > time.time() + 25
        deferred_to_ms = int(refused.value.retry_at * 1000)
        await mb_redis.zadd(queue, {"next": deferred_to_ms, "unrelated": deferred_to_ms})
        async with mb_redis.pubsub() as pubsub:
            await pubsub.subscribe("woobird:queue:wake")
            await pubsub.get_message(timeout=1)  # the subscription's own confirmation
            await limiter.release()
            woken = await pubsub.get_message(timeout=1)
    assert woken is not None
    assert woken["type"] == "message"
    moved = await mb_redis.zscore(queue, "next")
    assert moved is not None
    assert moved <= time.time() * 1000 + 1
    assert await mb_redis.zscore(queue, "unrelated") == deferred_to_ms  # no appointment: left alone
    with requests_in(Lane.BACKLOG, waiter="next"):
        await limiter.admit()  # its room is there


async def test_releasing_moves_no_job_that_is_running_nor_past_a_fresh_claim(mb_redis: Redis) -> None:
    queue = "test:queue"
    limiter = RateLimiter(mb_redis, limit=7, window=30, safety=0, backlog_wait=0, backlog_room=4, queue=queue)

    async def run_leaving_room(*, fresh_claim: bool) -> float:
        with requests_in(Lane.BACKLOG, waiter="first"):
            await limiter.admit()
            for _ in range(3):
                await limiter.acquire()
            with requests_in(Lane.BACKLOG, waiter="next"), pytest.raises(RateLimitBusy) as refused:
                await limiter.admit()
            await mb_redis.zadd(queue, {"next": int(refused.value.retry_at * 1000)})
            if fresh_claim:  # a fresh request waits for the next slot: the free room is its lane's
                await mb_redis.zadd("woobird:moneybird:calls:fresh", {"fresh-job": (time.time() + 30) * 1e6})
            await limiter.release()
        return refused.value.retry_at

    # Still running (arq's in-progress key): arq writes its new time when it ends; not moved.
    await mb_redis.set("arq:in-progress:next", 1)
    due = await run_leaving_room(fresh_claim=False)
    assert await mb_redis.zscore(queue, "next") == int(due * 1000)
    await mb_redis.flushdb()

    due = await run_leaving_room(fresh_claim=True)
    assert await mb_redis.zscore(queue, "next") == int(due * 1000)

    await mb_redis.flushdb()  # neither: moved (the two cases above fail for their own reason)
    due = await run_leaving_room(fresh_claim=False)
    assert (await mb_redis.zscore(queue, "next") or due * 1000) < due * 1000 - 20_000


async def test_a_backlog_request_gives_way_while_its_worker_books_a_fresh_order(
    router: respx.Router, client: MoneybirdClient
) -> None:
    # One event loop runs all of a worker's jobs: a fresh order's steps would wait behind those of
    # the backlog runs that start together when their limits' slots free.
    events: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events.append("backlog request sent")
        return httpx.Response(200, json=bodies.sales_invoice())

    router.get("/sales_invoices/1.json").mock(side_effect=answer)
    slots = BacklogSlots(7, gives_way_for=30)
    ctx = {BACKLOG_SLOTS: slots}

    async def backlog_order() -> None:
        with backlog_slot(ctx, Lane.BACKLOG):
            await client.get_sales_invoice("1")

    with backlog_slot(ctx, Lane.FRESH):
        backlog = asyncio.create_task(backlog_order())
        for _ in range(20):
            await asyncio.sleep(0)
        events.append("fresh order booked")
    await backlog
    assert events == ["fresh order booked", "backlog request sent"]

    # Without a fresh order it goes at once; behind one stuck on a slow answer, not for long.
    slots.gives_way_for = 0.05
    with backlog_slot(ctx, Lane.FRESH):
        await backlog_order()
    assert events[2:] == ["backlog request sent"]


async def test_a_fresh_order_does_not_wait_for_another(router: respx.Router, client: MoneybirdClient) -> None:
    router.get("/sales_invoices/1.json").respond(200, json=bodies.sales_invoice())
    slots = BacklogSlots(7, gives_way_for=30)
    ctx = {BACKLOG_SLOTS: slots}
    with backlog_slot(ctx, Lane.FRESH):
        with backlog_slot(ctx, Lane.FRESH):
            async with asyncio.timeout(5):
                await client.get_sales_invoice("1")  # 30 s if it gave way
        assert slots.fresh == 1
    assert slots.fresh == 0
