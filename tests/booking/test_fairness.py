"""Fairness between a history import and fresh orders, in one shop and across shops.

A backfilled order's job that finds its Moneybird limit taken is deferred in arq to its turn, its
try given back, instead of sleeping in a worker slot; a fresh order goes first, whichever shop it
is from. Everything is proven by what ran, in which order, and what the ledger and the fakes hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from arq.constants import retry_key_prefix

from app.booking import ledger
from app.booking.backfill import backfill
from app.constants import QUEUE_NAME
from app.db import transaction
from app.jobs import BACKLOG_SLOTS, BacklogSlots
from app.moneybird.ratelimit import RateLimiter, limiter_from_settings
from app.queue import enqueue, order_job
from app.runtime import Services, build_services, for_connection
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.sandbox.woocommerce.checkout import build_order
from app.schema import OrderRecord, OrderState
from tests.conftest import make_settings
from tests.harness import Harness, open_harness

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
PAID = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
BACKLOG = [6000 + n for n in range(12)]  # more than the worker's 10 slots
FRESH = 6100


def _cart(order_id: int, *, paid: datetime) -> dict[str, Any]:
    customer = Customer(
        first_name="Joris", last_name="Smit", email=f"klant{order_id}@example.nl", city="Delft"
    )
    item = CartItem(name="Mok", price=Decimal("12.50"), quantity=2, sku="MOK-1")
    return {
        "order_id": order_id,
        "customer": customer,
        "items": [item],
        "created_at": paid,
        "paid_at": paid,
        "completed_at": paid,
    }


async def _backfill(h: Harness, order_ids: list[int]) -> None:
    for order_id in order_ids:
        h.add_paid_order(**_cart(order_id, paid=PAID))
    report = await backfill(h.services, since=SINCE, max_outstanding=0)
    assert sorted(report.queued_ids) == order_ids


async def _environment_limiter(h: Harness) -> RateLimiter:
    """The limiter of connection 1's token and administration (the same Redis keys its jobs use)."""
    return await limiter_from_settings(h.redis, h.settings)


async def _tries(h: Harness) -> dict[str, tuple[float, int]]:
    """Each queued job: its score (ms) and the tries arq counted for it."""
    queued = await h.redis.zrange(QUEUE_NAME, 0, -1, withscores=True)
    result = {}
    for raw, score in queued:
        job_id = raw.decode()
        counted = await h.redis.get(retry_key_prefix + job_id)
        result[job_id] = (score, int(counted or 0))
    return result


async def test_a_backlog_job_finding_its_limit_full_waits_its_turn_without_spending_a_try(
    database_url: str, redis: Any
) -> None:
    async with open_harness(database_url=database_url, redis=redis, moneybird_rate_limit="20/3") as h:
        await _backfill(h, [6000])
        limiter = await _environment_limiter(h)
        for _ in range(20):  # the limit is full for the next 3 s
            await limiter.acquire()
        runs: list[tuple[str, int]] = []

        async def seen(ctx: dict[Any, Any]) -> None:
            runs.append((ctx["job_id"], ctx["job_try"]))

        await h.run_worker(on_job_start=seen)

        tries = [job_try for job_id, job_try in runs if job_id.startswith("order:6000:")]
        assert len(tries) >= 2  # put off at least once, then booked
        assert set(tries) == {1}  # and never charged a try for waiting
        record = await h.record(6000)
        assert record is not None
        assert (record.state, record.error, record.attempts) == (OrderState.BOOKED, None, 1)
        assert len(h.invoices_for("6000")) == 1
        # Not mistaken for a retry after a crash: no look-up by reference before creating.
        assert h.moneybird.calls("GET /sales_invoices/find_by_reference/{reference}") == 0
        async with h.sessions() as session:
            steps = [event.step for event in await ledger.events_for(session, 6000)]
        assert steps.count("started") == 1
        assert not [step for step in steps if "retr" in step or "fail" in step]


@asynccontextmanager
async def _other_shop(h: Harness) -> AsyncIterator[tuple[ShopSandbox, Services]]:
    """Connection 2: a shop of its own booking into an administration of its own (its own limit)."""
    shop = ShopSandbox(ping_on_create=False)
    moneybird = MoneybirdSandbox()
    settings = make_settings(
        database_url=h.settings.database_url,
        woocommerce_url=shop.url,
        woocommerce_consumer_key=shop.consumer_key,
        woocommerce_consumer_secret=shop.consumer_secret,
        moneybird_api_token=moneybird.token,
        moneybird_administration_id=moneybird.administration_id,
    )
    built = await build_services(
        settings,
        h.redis,
        shop_transport=httpx.ASGITransport(app=create_shop_app(shop)),
        moneybird_transport=sandbox_transport(moneybird),
        environment=h.settings,
        connection_id=2,
    )
    built.retry_scale = 0.002
    try:
        yield shop, for_connection(built, connection_id=2, contact_book_id=2)
    finally:
        await built.aclose()


async def _queue_fresh(services: Services, shop: ShopSandbox, order_id: int) -> str:
    """What the shop's webhook does: record the order's version, then queue its job."""
    document = shop.add_order(build_order(**_cart(order_id, paid=datetime.now(UTC))))
    modified = datetime.fromisoformat(document["date_modified_gmt"]).replace(tzinfo=UTC)
    async with transaction(services.sessions) as session:
        await ledger.record_delivery(
            session,
            order_id=order_id,
            order_number=str(order_id),
            date_modified=modified,
            date_paid=datetime.now(UTC) - timedelta(minutes=1),
        )
    job = order_job(order_id, modified, reason="webhook", connection_id=services.connection_id)
    assert await enqueue(services.redis, job)
    return job.job_id


async def _when_settled(services: Services, order_id: int, worker: asyncio.Task[int]) -> OrderRecord:
    """The order's ledger row once it is booked or failed, or once the worker ran out of jobs."""
    while True:
        async with services.sessions() as session:
            record = await ledger.get_order(session, order_id)
        assert record is not None
        if record.state in (OrderState.BOOKED, OrderState.FAILED) or worker.done():
            return record
        await asyncio.sleep(0.02)


async def test_another_shop_s_fresh_order_is_booked_while_a_backfill_waits_for_its_limit(
    database_url: str, redis: Any
) -> None:
    async with open_harness(database_url=database_url, redis=redis) as h, _other_shop(h) as (shop, other):
        await _backfill(h, BACKLOG)
        # Connection 1's limit is taken for the next seconds (Moneybird's 429 paused it, say).
        await (await _environment_limiter(h)).pause_until(time.time() + 6)
        fresh_job = await _queue_fresh(other, shop, FRESH)
        backlog_jobs = set(await _tries(h)) - {fresh_job}
        assert len(backlog_jobs) == len(BACKLOG)

        worker = asyncio.create_task(h.run_worker(connections={2: other}))
        try:
            fresh = await _when_settled(other, FRESH, worker)
            # What the backfill's orders are at that moment, and their jobs in the queue.
            backlog = [await h.record(order_id) for order_id in BACKLOG]
            now_ms = time.time() * 1000
            waiting = await _tries(h)
        finally:
            await worker  # their turn comes

        assert fresh.state == OrderState.BOOKED, fresh.error
        # When it was booked every order of the backfill still waited: none booked, none failed, none
        # charged a try, each deferred to its turn (a score in the future), not asleep in a worker.
        waits = {OrderState.QUEUED, OrderState.BOOKING}
        assert all(r is not None and r.state in waits and r.error is None for r in backlog), backlog
        assert set(waiting) == backlog_jobs
        assert all(score > now_ms and tries == 0 for score, tries in waiting.values())
        # …and then each was booked exactly once.
        for order_id in BACKLOG:
            record = await h.record(order_id)
            assert record is not None
            assert record.state == OrderState.BOOKED, record.error
            assert len(h.invoices_for(str(order_id))) == 1


async def test_within_one_shop_a_fresh_order_is_booked_before_the_waiting_backfill(
    database_url: str, redis: Any
) -> None:
    async with open_harness(database_url=database_url, redis=redis) as h:
        await _backfill(h, BACKLOG)
        await (await _environment_limiter(h)).pause_until(time.time() + 4)
        fresh = h.add_paid_order(**_cart(FRESH, paid=datetime.now(UTC) - timedelta(minutes=1)))
        assert (await h.deliver(int(fresh["id"]))).is_success

        await h.run_worker()

        record = await h.record(FRESH)
        assert record is not None
        assert record.state == OrderState.BOOKED, record.error
        creates = [
            (index, request.json["sales_invoice"]["reference"])
            for index, request in enumerate(h.moneybird.requests)
            if request.route == "POST /sales_invoices" and request.status == 201
        ]
        assert record.invoice_id is not None
        paid = [
            index
            for index, request in enumerate(h.moneybird.requests)
            if request.route == "POST /sales_invoices/{id}/payments" and record.invoice_id in request.path
        ]
        # The fresh order's invoice was made and paid before the backfill's first invoice was made.
        first_backlog = min(index for index, reference in creates if reference != f"WooCommerce #{FRESH}")
        assert paid
        assert paid[0] < first_backlog
        for order_id in BACKLOG:
            backfilled = await h.record(order_id)
            assert backfilled is not None
            assert backfilled.state == OrderState.BOOKED, backfilled.error
            assert len(h.invoices_for(str(order_id))) == 1


async def test_a_backlog_job_finding_the_worker_s_backlog_slots_taken_waits_and_a_fresh_one_runs(
    database_url: str, redis: Any
) -> None:
    """WORKER_FRESH_SLOTS of a worker's slots are never a backfill's: with the others taken by
    backlog orders, a backfilled order is put off (no try spent, nothing sent), a fresh one books."""
    async with open_harness(database_url=database_url, redis=redis) as h:
        await _backfill(h, [6000])
        async with _other_shop(h) as (shop, services):
            fresh = await _queue_fresh(services, shop, FRESH)
            slots = BacklogSlots(1)
            runs: list[tuple[str, int]] = []

            async def seen(ctx: dict[Any, Any]) -> None:
                ctx[BACKLOG_SLOTS] = slots
                runs.append((ctx["job_id"], ctx["job_try"]))

            asked = h.moneybird.calls()
            with slots.hold():  # another backlog order holds the worker's only backlog slot
                await h.run_worker(max_jobs=2, connections={2: services}, on_job_start=seen)
                record = await h.record(6000)
                assert record is not None
                assert (record.state, record.attempts) == (OrderState.QUEUED, 0)
                assert h.moneybird.calls() == asked  # put off before it asked anything
                (score, counted) = (await _tries(h))[next(j for j, _ in runs if j.startswith("order:6000:"))]
                assert counted == 0  # its try given back
                assert score > time.time() * 1000  # back in a moment
            async with services.sessions() as session:
                booked = await ledger.get_order(session, FRESH)
            assert booked is not None
            assert booked.state == OrderState.BOOKED
            assert fresh in {job_id for job_id, _ in runs}

            await h.run_worker(on_job_start=seen)  # the slot is free again
            record = await h.record(6000)
            assert record is not None
            assert (record.state, record.attempts) == (OrderState.BOOKED, 1)
