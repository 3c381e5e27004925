"""A real worker process stopped with SIGTERM, as Heroku and Fly stop one on every deploy.

The promise (README, Deploying): the worker finishes the bookings it is running within its grace
time (WORKER_JOB_COMPLETION_WAIT_SECONDS, 20 s, inside Heroku's 30 s before SIGKILL) and hands the
rest back to the queue, so the next worker books them — each exactly once, even the one whose
Moneybird answer was still outstanding when the grace time ran out.

    pytest ──(ledger rows + jobs)──▶ Redis ◀── worker 1 (Procfile `worker`)
      fake shop, fake Moneybird over HTTP ◀──┘     SIGTERM, then worker 2 takes over

Not part of the chaos mark: it is one deterministic scenario, about 35 seconds long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking.intake import record_and_enqueue
from app.constants import QUEUE_NAME, REDIS_MARKER_KEY, WORKER_JOB_COMPLETION_WAIT_SECONDS
from app.db import create_engine, session_factory
from app.queue import connect
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.samples import samples
from app.sandbox.server import serve
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.checkout import build_order
from app.schema import OrderRecord, OrderState
from app.settings import normalise_database_url
from app.woocommerce.models import OrderHeader
from tests.chaos.rig import AppProcess, Secrets, free_port, now_utc, process_env, procfile_command
from tests.services import redis_database

SHUTDOWN_REDIS_URL = redis_database(14)
ORDERS = 12  # more than the worker's max_jobs (10): two never start before the SIGTERM
HEROKU_KILL_SECONDS = 30
# The one payment whose answer never comes back in time: Moneybird registers it, then hangs.
HANG_SECONDS = 45


@pytest.fixture
async def queue_redis() -> AsyncIterator[ArqRedis]:
    redis = connect(SHUTDOWN_REDIS_URL)
    await redis.flushdb()
    yield redis
    await redis.flushdb()
    await redis.aclose()


async def _queued_orders(redis: ArqRedis) -> list[int]:
    """The order id of every booking job in the queue, once per job (cron jobs left out)."""
    job_ids = [raw.decode() for raw in await redis.zrange(QUEUE_NAME, 0, -1)]
    return sorted(int(job_id.split(":")[1]) for job_id in job_ids if job_id.startswith("order:"))


def _orders(shop: ShopSandbox) -> list[int]:
    kinds = [sample for sample in samples() if not sample.expect_failure]
    paid = now_utc() - timedelta(hours=1)
    ids = []
    for index in range(ORDERS):
        sample = kinds[index % len(kinds)]
        document = build_order(
            order_id=40001 + index,
            **{**sample.cart, "created_at": paid, "paid_at": paid, "completed_at": paid},
            transaction_id=f"tr_stop_{index}",
        )
        ids.append(int(shop.add_order(document)["id"]))
    return ids


async def _wait_for(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.1)


async def _states(sessions: async_sessionmaker[AsyncSession]) -> dict[int, str]:
    async with sessions() as session:
        rows = (await session.execute(select(OrderRecord.order_id, OrderRecord.state))).all()
    return {int(order_id): str(state) for order_id, state in rows}


@pytest.mark.timeout(180)
async def test_sigterm_finishes_running_bookings_and_hands_the_rest_back(
    tmp_path: Path, sqlite_url: str, queue_redis: ArqRedis
) -> None:
    secrets_ = Secrets()
    shop = ShopSandbox(
        consumer_key=secrets_.consumer_key, consumer_secret=secrets_.consumer_secret, ping_on_create=False
    )
    # Every Moneybird answer takes 0.3 s, so ten bookings are under way together when SIGTERM comes.
    moneybird = MoneybirdSandbox(
        token=secrets_.moneybird_token,
        administration_id=secrets_.administration_id,
        latency_seconds=0.3,
        timeout_seconds=HANG_SECONDS,
    )
    moneybird.fail_next("POST /sales_invoices/{id}/payments", kind="lost")
    engine = create_engine(normalise_database_url(sqlite_url))
    sessions = session_factory(engine)
    async with serve(create_shop_app(shop)) as shop_url, serve(create_moneybird_app(moneybird)) as mb_url:
        shop.url = shop_url
        env = process_env(
            secrets_=secrets_,
            shop_url=shop_url,
            moneybird_url=mb_url,
            web_port=free_port(),
            database_url=sqlite_url,
            redis_url=SHUTDOWN_REDIS_URL,
            since=now_utc() - timedelta(days=1),
            moneybird_timeout=HANG_SECONDS + 30,  # the worker waits for the hanging answer
            rate_limit="150/300",
        ) | {"WORKER_JOB_TIMEOUT_SECONDS": "120", "RECONCILE_INTERVAL_SECONDS": "3600"}
        order_ids = _orders(shop)
        for order_id in order_ids:
            header = OrderHeader.model_validate_json(shop.webhook_body(order_id))
            await record_and_enqueue(header, sessions=sessions, redis=queue_redis, reason="webhook")

        # A Redis that has been running: without the marker, the worker would take the fresh Redis
        # for one that lost its data and queue copies of the waiting orders (app.booking.redis_marker).
        await queue_redis.set(REDIS_MARKER_KEY, b"running")
        first = AppProcess("worker1", procfile_command("worker", port=0), env=env, log_dir=tmp_path)
        second = AppProcess("worker2", procfile_command("worker", port=0), env=env, log_dir=tmp_path)
        try:
            first.start()

            async def payment_hangs() -> bool:
                return any(r.fault == "lost" for r in moneybird.requests)

            await _wait_for(payment_hangs, within=60, what="a hanging payment")
            hanging = [r for r in moneybird.requests if r.fault == "lost"]
            before = await _states(sessions)
            running = [order_id for order_id, state in before.items() if state == OrderState.BOOKING]
            assert len(running) >= 5, before  # several bookings under way, not just the hanging one

            assert first.process is not None
            stopped_at = time.monotonic()
            first.process.terminate()  # SIGTERM
            await asyncio.to_thread(first.process.wait, HEROKU_KILL_SECONDS)
            took = time.monotonic() - stopped_at
            # It waited for its bookings (the hanging one for the whole grace time), then left
            # on its own before the platform's SIGKILL.
            assert WORKER_JOB_COMPLETION_WAIT_SECONDS - 1 <= took < HEROKU_KILL_SECONDS
            after = await _states(sessions)
            booked = {order_id for order_id, state in after.items() if state == OrderState.BOOKED}
            hung = next(
                order_id
                for order_id in order_ids
                if after[order_id] != OrderState.BOOKED and order_id in running
            )
            # Every booking that was running finished, except the one still waiting for Moneybird.
            assert set(running) - {hung} <= booked
            # The rest is back in the queue: the two that never started and the one cut off.
            waiting = set(order_ids) - booked
            assert hung in waiting
            # Each exactly once; a cron slot (reconciliation, verification) may have been queued too.
            assert await _queued_orders(queue_redis) == sorted(waiting)
            assert "cancelled, will be run again" in first.log()

            second.start()

            async def all_booked() -> bool:
                return set((await _states(sessions)).values()) == {OrderState.BOOKED}

            await _wait_for(all_booked, within=60, what="every order booked")
        finally:
            first.stop()
            second.stop()
            await engine.dispose()
    for order_id in order_ids:
        invoices = [
            i for i in moneybird.sales_invoices.values() if i["reference"] == f"WooCommerce #{order_id}"
        ]
        assert len(invoices) == 1, order_id
        assert len(invoices[0]["payments"]) == 1, order_id
        assert Decimal(invoices[0]["total_price_incl_tax"]) == Decimal(shop.orders[order_id]["total"])
    assert len(hanging) == 1
    assert moneybird.calls("POST /sales_invoices/{id}/payments") == ORDERS  # none paid twice
