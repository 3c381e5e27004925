"""Many shops in one woobird: the same order id, refund id and customer e-mail in two connections
never touch each other's rows, jobs or invoices; two connections booking into one administration
share its contacts and never a reference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client import REGISTRY
from sqlalchemy import select
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from app.booking import ledger
from app.db import transaction
from app.queue import enqueue, order_job
from app.runtime import Services, build_services, for_connection
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.sandbox.woocommerce.checkout import build_order
from app.schema import ContactRecord, OrderRecord, OrderState, RefundRecord
from tests.conftest import make_settings
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Sanne", last_name="Bakker", email="sanne@example.nl", city="Utrecht")
TEAPOT = CartItem(name="Theepot gietijzer", price=Decimal("34.95"), quantity=1, sku="TP-1")
ORDER_ID = 5101


def _add_order(shop: ShopSandbox, *, price: str) -> dict[str, Any]:
    item = CartItem(name=TEAPOT.name, price=Decimal(price), quantity=1, sku="TP-1")
    document = build_order(
        order_id=ORDER_ID,
        customer=CUSTOMER,
        items=[item],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )
    return shop.add_order(document)


@asynccontextmanager
async def _second_shop(
    h: Harness, *, moneybird: MoneybirdSandbox, contact_book_id: int
) -> AsyncIterator[tuple[ShopSandbox, Services]]:
    """Connection 2: a shop of its own, booking into `moneybird` (its own administration or h's)."""
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
        yield shop, for_connection(built, connection_id=2, contact_book_id=contact_book_id)
    finally:
        await built.aclose()


async def _queue(services: Services, shop: ShopSandbox) -> None:
    """What connection 2's webhook does: record the order's version, then queue its job."""
    document = shop.orders[ORDER_ID]
    modified = datetime.fromisoformat(document["date_modified_gmt"]).replace(tzinfo=UTC)
    async with transaction(services.sessions) as session:
        await ledger.record_delivery(
            session, order_id=ORDER_ID, order_number=str(ORDER_ID), date_modified=modified, date_paid=PAID_AT
        )
    job = order_job(ORDER_ID, modified, reason="test", connection_id=services.connection_id)
    assert await enqueue(services.redis, job)


def _jobs_booked(connection: str) -> float:
    labels = {"kind": "order", "outcome": "booked", "connection": connection}
    return REGISTRY.get_sample_value("woobird_jobs_total", labels) or 0.0


async def _rows(h: Harness, table: Any, *columns: Any) -> list[tuple[Any, ...]]:
    """Every row of `table` in the database, of every connection (a query outside any session's scope)."""
    async with h.services.engine.connect() as connection:
        result = await connection.execute(select(*columns).select_from(table.__table__).order_by(*columns))
        return [tuple(row) for row in result]


async def test_the_same_order_refund_and_email_in_two_shops_book_two_invoices(harness: Harness) -> None:
    h = harness
    other_moneybird = MoneybirdSandbox()
    async with _second_shop(h, moneybird=other_moneybird, contact_book_id=2) as (shop, second):
        _add_order(h.shop, price="34.95")
        _add_order(shop, price="50.00")
        first_refund = h.shop.add_refund(ORDER_ID, amount=Decimal("10.00"))
        second_refund = shop.add_refund(ORDER_ID, amount=Decimal("20.00"))
        assert first_refund["id"] == second_refund["id"]  # the overlap this test is about

        booked_before = {c: _jobs_booked(c) for c in ("1", "2")}
        assert (await h.deliver(ORDER_ID)).is_success
        await _queue(second, shop)
        await h.run_worker(connections={2: second})
        # The job counter names each connection by its id.
        assert {c: _jobs_booked(c) - booked_before[c] for c in ("1", "2")} == {"1": 1, "2": 1}

        async with h.sessions() as session:
            mine = await ledger.get_order(session, ORDER_ID)
        async with second.sessions() as session:
            theirs = await ledger.get_order(session, ORDER_ID)
        assert mine is not None
        assert theirs is not None
        assert (mine.state, theirs.state) == (OrderState.BOOKED, OrderState.BOOKED), (
            mine.error,
            theirs.error,
        )
        assert (mine.order_total, theirs.order_total) == (Decimal("42.29"), Decimal("60.50"))
        # Each invoice went to its own administration, under its own reference.
        assert [
            i["reference"] for i in h.moneybird.sales_invoices.values() if " refund " not in i["reference"]
        ] == [f"WooCommerce #{ORDER_ID}"]
        assert [
            i["reference"]
            for i in other_moneybird.sales_invoices.values()
            if " refund " not in i["reference"]
        ] == [f"WooCommerce c2 #{ORDER_ID}"]
        assert mine.invoice_id in h.moneybird.sales_invoices
        assert theirs.invoice_id in other_moneybird.sales_invoices

    # Both refunds were credited, each in its own shop's administration, each once.
    assert await _rows(
        h, RefundRecord, RefundRecord.connection_id, RefundRecord.refund_id, RefundRecord.state
    ) == [
        (1, first_refund["id"], "booked"),
        (2, second_refund["id"], "booked"),
    ]
    assert await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.order_id) == [
        (1, ORDER_ID),
        (2, ORDER_ID),
    ]
    # One contact per administration for the one e-mail address.
    contacts = await _rows(h, ContactRecord, ContactRecord.contact_book_id, ContactRecord.email)
    assert contacts == [(1, CUSTOMER.email), (2, CUSTOMER.email)]
    assert len(h.moneybird.contacts) == 1
    assert len(other_moneybird.contacts) == 1


async def test_two_shops_in_one_administration_share_its_contact_and_never_a_reference(
    harness: Harness,
) -> None:
    h = harness
    async with _second_shop(h, moneybird=h.moneybird, contact_book_id=1) as (shop, second):
        _add_order(h.shop, price="34.95")
        _add_order(shop, price="50.00")
        assert (await h.deliver(ORDER_ID)).is_success
        await _queue(second, shop)
        await h.run_worker(connections={2: second})

    references = sorted(i["reference"] for i in h.moneybird.sales_invoices.values())
    assert references == [f"WooCommerce #{ORDER_ID}", f"WooCommerce c2 #{ORDER_ID}"]
    totals = sorted(Decimal(i["total_price_incl_tax"]) for i in h.moneybird.sales_invoices.values())
    assert totals == [Decimal("42.29"), Decimal("60.50")]
    # The administration has one contact for the customer, and the ledger one row for it.
    assert len(h.moneybird.contacts) == 1
    assert await _rows(h, ContactRecord, ContactRecord.contact_book_id, ContactRecord.email) == [
        (1, CUSTOMER.email)
    ]
    states = await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.state)
    assert states == [(1, "booked"), (2, "booked")]


# ── each connection's webhook URL ────────────────────────────────────────────────────────────

SECOND_SECRET = "wbs_second_shop_0e6d1f9a2c4b7e8f1a3c5d7e9b0a2c4d"
SECRET_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddccbbaa99887766554433221100"


async def _add_second_connection(h: Harness, shop: ShopSandbox, *, name: str = "second") -> None:
    from app.settings_store import write_settings

    await write_settings(
        h.sessions,
        base=h.settings,
        values={
            "WOOCOMMERCE_URL": shop.url,
            "WOOCOMMERCE_CONSUMER_KEY": shop.consumer_key,
            "WOOCOMMERCE_CONSUMER_SECRET": shop.consumer_secret,
            "WOOCOMMERCE_WEBHOOK_SECRET": SECOND_SECRET,
            "MONEYBIRD_API_TOKEN": h.settings.moneybird_api_token.get_secret_value(),
            "MONEYBIRD_ADMINISTRATION_ID": "223456789012345678",
            "SYNC_SINCE": "2020-01-01T00:00:00Z",
        },
        actor="test",
        connection_id=2,
        connection_name=name,
    )


def _signed(shop: ShopSandbox, secret: str) -> tuple[bytes, dict[str, str]]:
    from app.webhooks import sign

    body = shop.webhook_body(ORDER_ID, "order.updated")
    headers = {
        "content-type": "application/json",
        "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-signature": sign(secret, body),
    }
    return body, headers


@pytest.fixture
async def sealing_harness(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    """The harness with a SECRET_KEY, so another connection's secrets can be stored (sealed)."""
    async with open_harness(database_url=database_url, redis=redis, secret_key=SECRET_KEY) as wired:
        yield wired


async def test_a_connections_url_takes_only_deliveries_signed_with_its_own_secret(
    sealing_harness: Harness,
) -> None:
    from app.constants import QUEUE_NAME, WEBHOOK_PATH

    h = sealing_harness
    shop = ShopSandbox(ping_on_create=False)
    _add_order(shop, price="50.00")
    await _add_second_connection(h, shop)
    first_secret = h.settings.woocommerce_webhook_secret.get_secret_value()

    body, wrong = _signed(shop, first_secret)
    with capture_logs(processors=[merge_contextvars]) as logs:
        assert (await h.web.post(f"{WEBHOOK_PATH}/second", content=body, headers=wrong)).status_code == 401
    (rejected,) = [entry for entry in logs if entry["event"] == "webhook rejected"]
    assert rejected["connection"] == 2
    body, right = _signed(shop, SECOND_SECRET)
    assert (await h.web.post(WEBHOOK_PATH, content=body, headers=right)).status_code == 401
    assert (await h.web.post(f"{WEBHOOK_PATH}/third", content=body, headers=right)).status_code == 404
    assert (await h.web.post(f"{WEBHOOK_PATH}/Bad%20Name", content=body, headers=right)).status_code == 404
    assert await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.order_id) == []

    counted_as = {"outcome": "queued", "connection": "2"}
    counted_before = REGISTRY.get_sample_value("woobird_webhook_deliveries_total", counted_as) or 0.0
    with capture_logs(processors=[merge_contextvars]) as logs:
        answer = await h.web.post(f"{WEBHOOK_PATH}/second", content=body, headers=right)
    assert answer.status_code == 202, answer.text
    # Counted for its own connection (an id, never the shop's address).
    counted = REGISTRY.get_sample_value("woobird_webhook_deliveries_total", counted_as) or 0.0
    assert counted - counted_before == 1
    # Its log lines name it, as its jobs' do.
    (queued,) = [entry for entry in logs if entry["event"] == "order queued"]
    assert (queued["connection"], queued["order_id"]) == (2, ORDER_ID)
    assert await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.order_id) == [(2, ORDER_ID)]
    job_ids = [raw.decode() for raw in await h.redis.zrange(QUEUE_NAME, 0, -1)]
    assert len(job_ids) == 1
    assert job_ids[0].startswith(f"c2:order:{ORDER_ID}:")

    # A removed connection receives nothing more.
    from app.connections import remove_connection

    await remove_connection(h.sessions, "second")
    assert (await h.web.post(f"{WEBHOOK_PATH}/second", content=body, headers=right)).status_code == 410


async def test_a_paused_connection_books_nothing_and_loses_nothing(harness: Harness) -> None:
    from app.booking.reconcile import requeue_waiting
    from app.connections import pause_connection, resume_connection
    from app.schema import utcnow
    from app.settings_store import ensure_connection

    h = harness
    async with _second_shop(h, moneybird=MoneybirdSandbox(), contact_book_id=2) as (shop, second):
        async with transaction(h.sessions) as session:
            await ensure_connection(session, 2, name="second")
        await pause_connection(h.sessions, "second")
        _add_order(h.shop, price="34.95")
        _add_order(shop, price="50.00")
        assert (await h.deliver(ORDER_ID)).is_success
        await _queue(second, shop)
        await h.run_worker(connections={2: second})
        # Connection 1 booked; the paused one recorded its order and booked nothing.
        assert await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.state) == [
            (1, "booked"),
            (2, "queued"),
        ]

        await resume_connection(h.sessions, "second")
        assert await requeue_waiting(second, now=utcnow(), reason="connection resumed") == 1
        await h.run_worker(connections={2: second})
        assert await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.state) == [
            (1, "booked"),
            (2, "booked"),
        ]


# ── reconciliation of every connection ───────────────────────────────────────────────────────


async def test_the_other_connections_passes_are_spread_over_the_interval(harness: Harness) -> None:
    from app.booking.reconcile import spread_reconciliations
    from app.connections import pause_connection
    from app.constants import QUEUE_NAME
    from app.settings_store import ensure_connection

    h = harness
    async with transaction(h.sessions) as session:
        for connection_id, name in ((2, "two"), (3, "three"), (4, "four")):
            await ensure_connection(session, connection_id, name=name)
    await pause_connection(h.sessions, "four")

    now = 1_800_000_000.0
    assert await spread_reconciliations(h.redis, h.sessions, interval_seconds=300, now=now) == 2
    slot = int(now // 300)
    queued = {raw.decode(): score for raw, score in await h.redis.zrange(QUEUE_NAME, 0, -1, withscores=True)}
    assert set(queued) == {f"c2:reconcile:{slot}", f"c3:reconcile:{slot}"}
    # A third of the interval apart, not at the same second; paused connection 4 has none.
    gap_ms = queued[f"c3:reconcile:{slot}"] - queued[f"c2:reconcile:{slot}"]
    assert abs(gap_ms - 100_000) < 1_000
    # Another worker's cron in the same slot queues nothing more.
    assert await spread_reconciliations(h.redis, h.sessions, interval_seconds=300, now=now + 5) == 0


async def test_a_connections_pass_books_the_order_its_webhook_never_delivered(harness: Harness) -> None:
    from app.constants import JOB_RECONCILE_CONNECTION
    from app.queue import connection_kwargs

    h = harness
    async with _second_shop(h, moneybird=MoneybirdSandbox(), contact_book_id=2) as (shop, second):
        _add_order(shop, price="50.00")
        await h.redis.enqueue_job(JOB_RECONCILE_CONNECTION, **connection_kwargs(2))
        await h.run_worker(connections={2: second})
        async with second.sessions() as session:
            succeeded = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
        async with h.sessions() as session:
            first_untouched = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
    assert succeeded is not None
    assert first_untouched is None
    assert await _rows(h, OrderRecord, OrderRecord.connection_id, OrderRecord.state) == [(2, "booked")]


async def test_a_connections_pass_finds_its_shops_webhook_at_its_own_url(harness: Harness) -> None:
    from app.booking.reconcile import check_webhook
    from app.settings_store import ensure_connection

    h = harness
    async with transaction(h.sessions) as session:
        await ensure_connection(session, 2, name="second")
    async with _second_shop(h, moneybird=MoneybirdSandbox(), contact_book_id=2) as (shop, second):
        shop.add_webhook(delivery_url="https://woobird.test/webhooks/woocommerce", secret=SECOND_SECRET)
        assert not (await check_webhook(second)).found  # connection 1's URL is not this shop's
        shop.add_webhook(
            delivery_url="https://woobird.test/webhooks/woocommerce/second", secret=SECOND_SECRET
        )
        found = await check_webhook(second)
    assert found.found
    assert found.webhook_id == max(shop.webhooks)


async def test_a_connections_token_refresh_reads_and_writes_only_its_own_tokens(
    sealing_harness: Harness,
) -> None:
    from app.settings_store import read_stored, write_settings
    from app.setup.moneybird_connect import refresh_stored_token

    h = sealing_harness
    for connection_id, token in ((1, "mbt_first_access_4e1d9c2b"), (2, "mbt_second_access_7a3f0e5c")):
        await write_settings(
            h.sessions,
            base=h.settings,
            values={"MONEYBIRD_API_TOKEN": token, "MONEYBIRD_REFRESH_TOKEN": f"refresh-{token}"},
            actor="test",
            connection_id=connection_id,
        )
    # Connection 2's token was refused while another process already stored a new one: it gets its
    # own connection's, never connection 1's.
    answered = await refresh_stored_token(h.settings, failed_token="mbt_expired_0000", connection_id=2)
    assert answered == "mbt_second_access_7a3f0e5c"
    async with h.sessions() as session:
        first = (await read_stored(session, h.settings, connection_id=1)).values
    assert first["MONEYBIRD_API_TOKEN"] == "mbt_first_access_4e1d9c2b"


async def test_every_connection_in_a_worker_borrows_the_workers_one_database_engine(
    sealing_harness: Harness,
) -> None:
    """Fifty shops must not hold fifty connection pools open against PostgreSQL's limit."""
    from sqlalchemy import text

    from app.db import create_engine, session_factory
    from app.runtime import connection_services
    from app.settings_live import LiveSettings

    h = sealing_harness
    await _add_second_connection(h, ShopSandbox(ping_on_create=False))
    engine = create_engine(h.settings.database_url)
    live = LiveSettings(h.settings, session_factory(engine))
    await live.start()
    ctx: dict[str, Any] = {
        "redis": h.redis,
        "live_settings": live,
        "live_engine": engine,
        "services": h.services,
        "connection_services": {},
        "retired_services": [],
    }
    try:
        second = await connection_services(ctx, 2)
        assert second is not None
        assert second.connection_id == 2
        assert second.engine is engine
        await second.aclose()
        # Closing one connection's services leaves the pool the others use open.
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
