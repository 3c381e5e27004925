"""What the worker does for every connection, not only the environment's: the periodic verification
(each connection verified on its own turn, spread over the hour, one's failure stopping none) and the
re-queue after Redis lost its data (each connection's waiting orders, under its own job ids).

Two and three connections need PostgreSQL (SQLite holds one): these tests run on it only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.booking import ledger
from app.booking.redis_marker import RedisMarker, Requeued
from app.booking.verify import VERIFY_LAST_ERROR, VERIFY_LAST_SUCCESS
from app.connections import pause_connection
from app.constants import QUEUE_NAME
from app.db import session_factory, transaction
from app.queue import enqueue, order_job
from app.runtime import Services, build_services, for_connection
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.sandbox.woocommerce.checkout import build_order
from app.schema import Finding, OrderState
from app.settings_live import LiveSettings
from app.settings_store import ensure_connection
from tests.conftest import _truncate, make_settings
from tests.harness import Harness, open_harness

ORDER_ID = 6201  # the same order id in every shop: the overlap these tests are about
CUSTOMER = Customer(first_name="Noor", last_name="Visser", email="noor@example.nl", city="Delft")
VASE = CartItem(name="Vaas glas", price=Decimal("24.50"), quantity=1, sku="VAAS-1")


@pytest.fixture
async def h(postgres_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    await _truncate(postgres_url)
    async with open_harness(database_url=postgres_url, redis=redis) as wired:
        yield wired


def _recently() -> datetime:
    """Paid an hour ago: within the months the periodic verification reads back."""
    return schema.utcnow() - timedelta(hours=1)


def _add_order(shop: ShopSandbox, *, paid_at: datetime) -> None:
    shop.add_order(
        build_order(
            order_id=ORDER_ID,
            customer=CUSTOMER,
            items=[VASE],
            created_at=paid_at,
            paid_at=paid_at,
            completed_at=paid_at,
        )
    )


@asynccontextmanager
async def _other_shop(
    h: Harness, *, connection_id: int, name: str, moneybird: MoneybirdSandbox
) -> AsyncIterator[tuple[ShopSandbox, Services]]:
    """Another connection: its shop, its own Moneybird administration, its ledger rows."""
    async with transaction(h.sessions) as session:
        await ensure_connection(session, connection_id, name=name)
    shop = ShopSandbox(ping_on_create=False)
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
    )
    built.retry_scale = 0.002
    try:
        yield shop, for_connection(built, connection_id=connection_id, contact_book_id=connection_id)
    finally:
        await built.aclose()


async def _queue(services: Services, shop: ShopSandbox) -> None:
    """What a connection's webhook does: record the order's version, then queue its job."""
    document = shop.orders[ORDER_ID]
    modified = datetime.fromisoformat(document["date_modified_gmt"]).replace(tzinfo=UTC)
    paid = datetime.fromisoformat(document["date_paid_gmt"]).replace(tzinfo=UTC)
    async with transaction(services.sessions) as session:
        await ledger.record_delivery(
            session, order_id=ORDER_ID, order_number=str(ORDER_ID), date_modified=modified, date_paid=paid
        )
    assert await enqueue(
        services.redis, order_job(ORDER_ID, modified, reason="test", connection_id=services.connection_id)
    )


def _sessions_of(h: Harness, connection_id: int) -> async_sessionmaker[AsyncSession]:
    return session_factory(h.services.engine, connection_id=connection_id)


async def _state(h: Harness, connection_id: int, key: str) -> str | None:
    async with _sessions_of(h, connection_id)() as session:
        return await ledger.get_state(session, key)


async def _queued(h: Harness) -> dict[str, float]:
    return {raw.decode(): score for raw, score in await h.redis.zrange(QUEUE_NAME, 0, -1, withscores=True)}


# ── the periodic verification ────────────────────────────────────────────────────────────────


async def test_every_connection_is_verified_on_its_own_turn_and_one_failing_stops_none(h: Harness) -> None:
    from app.booking.verify import VERIFY_SPREAD_SECONDS, verify_every_connection

    second_books, third_books = MoneybirdSandbox(), MoneybirdSandbox()
    async with AsyncExitStack() as stack:
        second_shop, second = await stack.enter_async_context(
            _other_shop(h, connection_id=2, name="second", moneybird=second_books)
        )
        third_shop, third = await stack.enter_async_context(
            _other_shop(h, connection_id=3, name="third", moneybird=third_books)
        )
        # The same order, paid an hour ago, booked in each of the three shops' administrations.
        paid = _recently()
        _add_order(h.shop, paid_at=paid)
        assert (await h.deliver(ORDER_ID)).is_success
        for services, shop in ((second, second_shop), (third, third_shop)):
            _add_order(shop, paid_at=paid)
            await _queue(services, shop)
        await h.run_worker(connections={2: second, 3: third})
        invoices = {}
        for connection_id in (1, 2, 3):
            async with _sessions_of(h, connection_id)() as session:
                record = await ledger.get_order(session, ORDER_ID)
            assert record is not None
            assert record.state == OrderState.BOOKED, (connection_id, record.error)
            invoices[connection_id] = record.invoice_id
        # Someone deletes connection 2's invoice in its administration; connection 3's Moneybird is away.
        assert invoices[2] is not None
        del second_books.sales_invoices[invoices[2]]
        third_books.fail_next("*", kind="status", status=503, times=10_000)

        live = LiveSettings(h.settings, h.sessions)
        await live.start()
        ctx: dict[str, Any] = {
            "redis": h.redis,
            "live_settings": live,
            "services": h.services,
            "owns_services": False,
            "connection_services": {},
            "job_try": 1,
        }
        before = time.time()
        outcome = await verify_every_connection(ctx)

        # Connection 1 verified at once; the other two queued, a third of the hour apart.
        assert outcome["ok"] is True
        slot = int(before // VERIFY_SPREAD_SECONDS)
        queued = await _queued(h)
        assert set(queued) == {f"c2:verify:{slot}", f"c3:verify:{slot}"}
        gap_ms = queued[f"c3:verify:{slot}"] - queued[f"c2:verify:{slot}"]
        assert abs(gap_ms - VERIFY_SPREAD_SECONDS * 1000 / 3) < 5_000
        assert await _state(h, 2, VERIFY_LAST_SUCCESS) is None  # not before its turn

        # Their turns come (the test does not wait twenty minutes for them).
        now_ms = time.time() * 1000
        await h.redis.zadd(QUEUE_NAME, dict.fromkeys(queued, now_ms))
        await h.run_worker(connections={2: second, 3: third})

    # Each connection's own state: 1 and 2 verified; 3 failed, and says why, in its own state only.
    assert await _state(h, 1, VERIFY_LAST_SUCCESS) is not None
    assert await _state(h, 2, VERIFY_LAST_SUCCESS) is not None
    assert await _state(h, 3, VERIFY_LAST_SUCCESS) is None
    third_error = await _state(h, 3, VERIFY_LAST_ERROR)
    assert third_error is not None
    assert "503" in third_error or "unavailable" in third_error.lower(), third_error
    assert await _state(h, 1, VERIFY_LAST_ERROR) is None
    assert await _state(h, 2, VERIFY_LAST_ERROR) is None
    # The deleted invoice is connection 2's finding, and no other connection's.
    async with h.services.engine.connect() as connection:
        findings = (
            await connection.execute(
                select(
                    Finding.__table__.c.connection_id,
                    Finding.__table__.c.kind,
                    Finding.__table__.c.invoice_id,
                )
            )
        ).all()
    assert [tuple(row) for row in findings] == [(2, "invoice_deleted", invoices[2])]


async def test_a_paused_connection_is_not_verified_and_another_cron_queues_no_second_look(
    h: Harness,
) -> None:
    from app.booking.verify import VERIFY_SPREAD_SECONDS, verify_every_connection

    async with transaction(h.sessions) as session:
        for connection_id, name in ((2, "two"), (3, "three")):
            await ensure_connection(session, connection_id, name=name)
    await pause_connection(h.sessions, "three")
    live = LiveSettings(h.settings, h.sessions)
    await live.start()
    ctx: dict[str, Any] = {"redis": h.redis, "live_settings": live, "services": h.services, "job_try": 1}
    ctx["connection_services"] = {}

    await verify_every_connection(ctx)
    await verify_every_connection(ctx)  # another worker's cron in the same hour
    # A retry of connection 1's look queues nothing either.
    await verify_every_connection({**ctx, "job_try": 2})

    slot = int(time.time() // VERIFY_SPREAD_SECONDS)
    assert set(await _queued(h)) == {f"c2:verify:{slot}"}


# ── after Redis lost its data ────────────────────────────────────────────────────────────────


async def test_after_redis_lost_its_data_every_connections_waiting_orders_are_queued_again(
    h: Harness,
) -> None:
    async with transaction(h.sessions) as session:
        for connection_id, name in ((2, "second"), (3, "paused")):
            await ensure_connection(session, connection_id, name=name)
    await pause_connection(h.sessions, "paused")
    modified = schema.utcnow() - timedelta(minutes=5)
    # The same order id waits in three connections: queued in 1 and 3, booking in 2 (its job was
    # running when Redis emptied).
    for connection_id in (1, 2, 3):
        async with transaction(_sessions_of(h, connection_id)) as session:
            await ledger.record_delivery(
                session,
                order_id=ORDER_ID,
                order_number=str(ORDER_ID),
                date_modified=modified,
                date_paid=modified,
            )
            if connection_id == 2:
                await ledger.update_order(session, ORDER_ID, state=OrderState.BOOKING.value)

    await h.redis.flushdb()
    healed = await RedisMarker(grace_seconds=0).check(h.services)

    # Connection 1's and 2's, each under its own job id; the paused one's waits for its resume.
    assert healed == Requeued(orders=2, refunds=0)
    job_ids = sorted(await _queued(h))
    stamp = int(modified.timestamp())
    assert [job_id.split(":after-redis-loss-")[0] for job_id in job_ids] == [
        f"c2:order:{ORDER_ID}:{stamp}",
        f"order:{ORDER_ID}:{stamp}",
    ]
    assert await _state(h, 1, ledger.REDIS_LOST_AT) is not None
    assert await _state(h, 2, ledger.REDIS_LOST_REQUEUED) == "1 orders, 0 refunds"
    assert await _state(h, 3, ledger.REDIS_LOST_AT) is None
