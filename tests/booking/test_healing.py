"""Healing end to end: whatever webhooks and Redis lose, one reconciliation pass and a worker run book.

Each test breaks the path from the shop to Moneybird in one way a deployment really breaks —
a delivery that never came, a week of downtime, a Redis flush, a worker killed mid-booking —
then runs `reconcile` and the real worker, and checks the invariant: every paid order has exactly
one paid invoice for what the customer paid, and one contact per customer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app import schema
from app.booking.reconcile import reconcile
from app.constants import RECONCILE_OVERLAP_SECONDS, RECONCILE_STALE_BOOKING_SECONDS
from app.main import create_app
from app.sandbox.woocommerce.cart import Customer
from app.schema import OrderState, OrderStep
from app.settings import normalise_database_url
from tests.harness import Harness
from tests.invoicing.reference_carts import CARTS


def _customer(name: str) -> Customer:
    return Customer(first_name=name, last_name="Jansen", email=f"{name.lower()}@example.nl", city="Delft")


def _add(harness: Harness, order_id: int, *, customer: Customer, cart: str = "a") -> dict[str, Any]:
    """A paid order with the reference cart's lines, for `customer`, stored in the fake shop."""
    return harness.add_paid_order(
        **{**CARTS[cart], "order_id": order_id, "number": str(order_id), "customer": customer}
    )


async def _assert_booked_once(harness: Harness, document: dict[str, Any]) -> None:
    record = await harness.record(int(document["id"]))
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    invoices = harness.invoices_for(str(document["number"]))
    assert len(invoices) == 1, f"order {document['number']} has {len(invoices)} invoices"
    invoice = invoices[0]
    assert invoice["state"] == "paid"
    assert len(invoice["payments"]) == 1
    assert Decimal(invoice["total_price_incl_tax"]) == Decimal(document["total"])
    assert record.invoice_id == str(invoice["id"])


async def test_a_webhook_that_never_came_is_booked_after_the_next_pass(harness: Harness) -> None:
    delivered = _add(harness, 7001, customer=_customer("Anna"))
    lost = _add(harness, 7002, customer=_customer("Bram"))
    assert (await harness.deliver(7001)).status_code == 202
    await harness.run_worker()
    assert await harness.record(7002) is None  # the shop never told us
    assert harness.invoices_for("7002") == []

    report = await reconcile(harness.services)
    assert report.queued_ids == [7002]
    await harness.run_worker()
    for document in (delivered, lost):
        await _assert_booked_once(harness, document)

    again = await reconcile(harness.services)  # a later pass finds nothing left to do
    assert (again.queued, again.requeued) == (0, 0)
    assert await harness.run_worker() == 0
    assert len(harness.moneybird.sales_invoices) == 2


async def test_orders_placed_while_woobird_was_down_are_all_booked_after_one_pass(harness: Harness) -> None:
    await reconcile(harness.services)  # woobird ran once, then went away for a week
    harness.shop.advance(7 * 24 * 3600)
    anna, bram = _customer("Anna"), _customer("Bram")
    documents = [
        _add(harness, 7101, customer=anna),
        _add(harness, 7102, customer=bram, cart="b"),
        _add(harness, 7103, customer=anna, cart="c"),  # a returning customer
        _add(harness, 7104, customer=_customer("Cas"), cart="e"),
    ]
    for _ in documents:
        harness.shop.advance(3600)

    report = await reconcile(harness.services)
    assert sorted(report.queued_ids) == [7101, 7102, 7103, 7104]
    assert report.complete
    await harness.run_worker()
    for document in documents:
        await _assert_booked_once(harness, document)
    assert len(harness.moneybird.contacts) == 3


async def test_a_redis_flush_between_webhook_and_worker_is_healed_by_the_next_pass(harness: Harness) -> None:
    document = _add(harness, 7201, customer=_customer("Anna"))
    assert (await harness.deliver(7201)).status_code == 202
    assert await harness.queued() == 1
    await harness.redis.flushdb()  # Redis restarted empty: the job is gone, the ledger is not

    assert await harness.run_worker() == 0
    record = await harness.record(7201)
    assert record is not None
    assert record.state == OrderState.QUEUED
    assert harness.moneybird.sales_invoices == {}

    report = await reconcile(harness.services)
    assert report.queued + report.requeued == 1
    assert await harness.queued() == 1
    await harness.run_worker()
    await _assert_booked_once(harness, document)


async def test_a_flushed_job_older_than_the_pass_window_is_queued_again_from_the_ledger(
    harness: Harness,
) -> None:
    document = _add(harness, 7202, customer=_customer("Bram"))
    await harness.deliver(7202)
    await reconcile(harness.services)  # the watermark moves past the order while its job waits
    harness.shop.advance(RECONCILE_OVERLAP_SECONDS + 3600)
    _add(harness, 7203, customer=_customer("Cas"))  # the shop goes on; the next window starts later
    await reconcile(harness.services)
    await harness.redis.flushdb()

    report = await reconcile(harness.services)
    assert report.window_start > datetime.fromisoformat(str(document["date_modified_gmt"])).replace(
        tzinfo=UTC
    )
    # 7203 is still inside the window and comes back through intake; only the ledger remembers 7202.
    assert (report.queued_ids, report.requeued) == ([7203], 1)
    await harness.run_worker()
    await _assert_booked_once(harness, document)


@pytest.mark.parametrize(
    ("dies_after", "step"),
    [
        ("POST /contacts", None),
        ("POST /sales_invoices", OrderStep.INVOICE_CREATING),
        ("PATCH /sales_invoices/{id}/send_invoice", OrderStep.INVOICE_CREATED),
        ("POST /sales_invoices/{id}/payments", OrderStep.PAYING),
    ],
)
async def test_a_worker_killed_mid_booking_is_requeued_and_books_exactly_once(
    harness: Harness, dies_after: str, step: OrderStep | None
) -> None:
    document = _add(harness, 7301, customer=_customer("Anna"))
    await harness.deliver(7301)
    # Moneybird does the work but the answer never reaches the worker, which then dies with its
    # job (Redis lost it too): the ledger is left in `booking` and nothing will run it again.
    harness.moneybird.fail_next(dies_after, kind="lost")
    await harness.run_worker(max_jobs=1)  # one try, which ends in a retry that Redis then loses
    await harness.redis.flushdb()
    record = await harness.record(7301)
    assert record is not None
    assert (record.state, record.step) == (OrderState.BOOKING, step)
    made = harness.moneybird.calls(dies_after)
    assert made == 1

    live = await reconcile(harness.services)
    assert (live.queued, live.requeued) == (0, 0)  # it might still be running: left alone
    assert await harness.queued() == 0

    later = schema.utcnow() + timedelta(seconds=RECONCILE_STALE_BOOKING_SECONDS + 1)
    stale = await reconcile(harness.services, now=later)
    assert stale.requeued == 1
    await harness.run_worker()
    await _assert_booked_once(harness, document)
    assert len(harness.moneybird.contacts) == 1
    assert harness.moneybird.calls(dies_after) == 1  # adopted, not made a second time


@pytest.mark.parametrize("down", ["redis", "database"])
async def test_a_delivery_refused_with_503_is_booked_by_the_next_pass(harness: Harness, down: str) -> None:
    document = _add(harness, 7401, customer=_customer("Anna"))
    unreachable = {
        "redis": {"redis_url": "redis://127.0.0.1:1/0"},
        "database": {"database_url": normalise_database_url("postgresql://postgres@127.0.0.1:1/woobird")},
    }[down]
    # The web process lost its Redis (or database); the worker and the ledger did not.
    broken = create_app(harness.settings.model_copy(update=unreachable))
    async with (
        broken.router.lifespan_context(broken),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=broken), base_url="http://woobird.test") as web,
    ):
        response = await harness.deliver(7401, to=web)
    assert response.status_code == 503
    assert "reconciliation" in response.json()["error"]
    assert await harness.queued() == 0  # the queue the worker reads: nothing was queued

    report = await reconcile(harness.services)
    assert report.queued + report.requeued == 1
    await harness.run_worker()
    await _assert_booked_once(harness, document)


async def test_a_webhook_reactivated_after_failures_is_reactivated_again_when_the_next_fails(
    harness: Harness,
) -> None:
    secret = harness.settings.woocommerce_webhook_secret.get_secret_value()
    hook = harness.shop.add_webhook(delivery_url="http://woobird.test/webhooks/woocommerce", secret=secret)
    documents = [_add(harness, 7501 + n, customer=_customer(name)) for n, name in enumerate(["Anna", "Bram"])]
    broken = create_app(harness.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with (
        broken.router.lifespan_context(broken),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=broken), base_url="http://woobird.test") as down,
    ):
        for _ in range(7):  # woobird answers 503 seven times in a row: WooCommerce disables the hook
            await harness.shop.deliver(7501, client=down)
        assert harness.shop.webhooks[hook["id"]]["status"] == "disabled"
        first = await reconcile(harness.services)
        assert first.webhook is not None
        assert first.webhook.reactivated
        # WooCommerce kept its failure count: one more failed delivery disables it again ...
        await harness.shop.deliver(7502, client=down)
        assert harness.shop.webhooks[hook["id"]]["status"] == "disabled"
    # ... and the next pass switches it on again and books what the deliveries missed.
    second = await reconcile(harness.services)
    assert second.webhook is not None
    assert second.webhook.reactivated
    await harness.run_worker()
    for document in documents:
        await _assert_booked_once(harness, document)
    # woobird is healthy again: a delivery that gets through resets WooCommerce's count.
    _add(harness, 7503, customer=_customer("Cas"))
    assert await harness.shop.deliver(7503, client=harness.web) == 202
    assert (
        harness.shop.webhooks[hook["id"]]["status"],
        harness.shop.webhooks[hook["id"]]["failure_count"],
    ) == (
        "active",
        0,
    )
