"""A payment made in the bank reaches the shop whichever way woobird hears of it: Moneybird's signed
push to the web process, or — when no push can arrive — the payments poll of the reconciliation pass.

The fakes as elsewhere: the fake Moneybird pushes every change to its webhooks (signed, with an
Idempotency-Key) to the real web app; `register_payment_from_bank` is the bank reconciliation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis

from app.booking.reconcile import reconcile
from app.constants import MONEYBIRD_WEBHOOK_PATH, MONEYBIRD_WEBHOOK_REGISTERING_KEY
from app.moneybird.webhook_setup import install_moneybird_webhook
from app.sandbox.moneybird.webhooks import deliver_pushes
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.schema import OrderState
from tests.harness import Harness, open_harness

ORDERED_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Femke", last_name="Mulder", email="femke@example.nl", city="Leiden")
LAMP = CartItem(name="Bureaulamp", price=Decimal("49.95"), quantity=1, sku="LAMP-1")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))
SECRET = "whsec_payments_heard_3f9a"
SETTINGS: dict[str, Any] = {
    "moneybird_webhook_secret": SECRET,
    "open_invoice_payment_methods": ["bacs"],
    "sync_since": datetime(2026, 1, 1, tzinfo=UTC),
    "public_url": "https://woobird.example",
}


@pytest.fixture
async def h(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(database_url=database_url, redis=redis, **SETTINGS) as wired:
        wired.moneybird.push_client = wired.web
        wired.moneybird.next_webhook_secret = SECRET
        yield wired


async def _open_invoice(h: Harness, order_id: int) -> str:
    document = build_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=[LAMP],
        shipping=[PARCEL],
        status="on-hold",
        created_at=ORDERED_AT,
        paid_at=None,
        payment_method="bacs",
        payment_method_title="Direct bank transfer",
    )
    h.shop.add_order(document)
    assert (await h.deliver(order_id)).status_code == 202
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT, record.error
    assert record.invoice_id is not None
    return record.invoice_id


async def _paid_in_shop(h: Harness, order_id: int) -> bool:
    record = await h.record(order_id)
    order = h.shop.orders[order_id]
    return record is not None and record.state == OrderState.BOOKED and order["status"] == "processing"


async def test_the_banks_payment_pushed_by_moneybird_marks_the_order_paid(h: Harness) -> None:
    # woobird's webhook, registered as `woobird webhook install` does (tests/test_moneybird_pushes.py).
    await h.redis.set(MONEYBIRD_WEBHOOK_REGISTERING_KEY, "1", ex=60)
    installed = await install_moneybird_webhook(
        h.services.moneybird, url="https://woobird.example" + MONEYBIRD_WEBHOOK_PATH
    )
    await h.redis.delete(MONEYBIRD_WEBHOOK_REGISTERING_KEY)
    assert installed.secret == SECRET  # the fake hands out the secret the web app was started with
    invoice_id = await _open_invoice(h, 5101)
    h.moneybird.pushes.clear()
    total = h.moneybird.sales_invoices[invoice_id]["total_price_incl_tax"]
    h.moneybird.register_payment_from_bank(invoice_id, total)
    assert await deliver_pushes(h.moneybird) == 2  # payment registered; the invoice paid
    await h.run_worker()
    assert await _paid_in_shop(h, 5101)
    assert h.moneybird.calls("POST /sales_invoices/synchronization") == 0  # no poll was needed


async def test_a_payment_no_push_reported_is_found_by_the_next_reconciliation_pass(h: Harness) -> None:
    invoice_id = await _open_invoice(h, 5102)
    h.moneybird.register_payment_from_bank(
        invoice_id, h.moneybird.sales_invoices[invoice_id]["total_price_incl_tax"]
    )
    # No webhook was ever registered (a private deployment): only the poll can hear of it.
    assert h.moneybird.webhooks == {}
    h.moneybird.reset_requests()
    report = await reconcile(h.services)
    assert report.payments == 1
    assert h.moneybird.calls("POST /sales_invoices/synchronization") == 1
    await h.run_worker()
    assert await _paid_in_shop(h, 5102)
    # Settled: the next pass reads nothing more back.
    h.moneybird.reset_requests()
    assert (await reconcile(h.services)).payments == 0
    assert h.moneybird.calls("POST /sales_invoices/synchronization") == 0


async def test_the_poll_reads_a_hundred_open_invoices_a_request_and_queues_only_those_with_money(
    h: Harness,
) -> None:
    opened = [await _open_invoice(h, order_id) for order_id in range(5200, 5203)]
    h.moneybird.register_payment_from_bank(opened[1], "10.00")  # a part payment: settling reports it
    h.moneybird.reset_requests()
    report = await reconcile(h.services)
    assert report.payments == 1
    assert h.moneybird.calls("POST /sales_invoices/synchronization") == 1
    settle = {key.decode() for key in await h.redis.keys("arq:job:settle-invoice:*")}
    assert settle == {f"arq:job:settle-invoice:{opened[1]}"}


async def test_a_pass_without_open_invoices_asks_moneybird_nothing(h: Harness) -> None:
    h.moneybird.reset_requests()
    report = await reconcile(h.services)
    assert report.payments == 0
    assert h.moneybird.calls() == 0


async def test_moneybird_away_during_the_poll_does_not_fail_the_pass(h: Harness) -> None:
    invoice_id = await _open_invoice(h, 5103)
    h.moneybird.register_payment_from_bank(
        invoice_id, h.moneybird.sales_invoices[invoice_id]["total_price_incl_tax"]
    )
    h.moneybird.fail_next("POST /sales_invoices/synchronization", kind="status", status=503, times=10)
    report = await reconcile(h.services)
    assert report.payments == 0
    record = await h.record(5103)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT
    h.moneybird.faults.clear()
    assert (await reconcile(h.services)).payments == 1
