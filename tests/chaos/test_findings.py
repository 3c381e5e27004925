"""What the chaos run found, each reduced to the smallest run that shows it (fast; not marked chaos).

Reconciliation heals lost *order* jobs (`requeue_waiting`), but a refund of an already booked order
is only discovered by a booking job of the order's new version. When that job is lost — Redis
restarted, or the webhook never came — nothing discovers the refund again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.booking.reconcile import reconcile
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from tests.harness import Harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CART: dict[str, Any] = {
    "customer": Customer(first_name="Noor", last_name="Visser", email="noor@example.nl", city="Delft"),
    "items": [CartItem(name="Theepot gietijzer", price=Decimal("34.95"), sku="TP-1")],
    "shipping": [ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))],
    "created_at": PAID_AT,
    "paid_at": PAID_AT,
    "completed_at": PAID_AT,
}


async def _booked(h: Harness, order_id: int) -> dict[str, Any]:
    order = h.add_paid_order(order_id=order_id, **CART)
    assert (await h.deliver(order_id)).status_code == 202
    await h.run_worker()
    assert len(h.invoices_for(str(order_id))) == 1
    return order


def _credits(h: Harness, order_id: int, refund_id: int) -> list[dict[str, Any]]:
    reference = f"WooCommerce #{order_id} refund {refund_id}"
    return [inv for inv in h.moneybird.sales_invoices.values() if inv.get("reference") == reference]


async def test_refund_whose_job_was_lost_in_a_redis_restart_is_credited_after_reconcile(
    harness: Harness,
) -> None:
    h = harness
    await _booked(h, 7101)
    refund = h.shop.add_refund(7101, amount=Decimal("10.00"), reason="retour")
    assert (await h.deliver(7101)).status_code == 202  # the new version is queued …
    await h.redis.flushdb()  # … and lost with everything else in Redis
    await reconcile(h.services)
    await h.run_worker()
    assert len(_credits(h, 7101, refund["id"])) == 1


async def test_full_refund_without_a_webhook_is_credited_after_reconcile(harness: Harness) -> None:
    h = harness
    order = await _booked(h, 7102)
    everything = {line["id"]: line["quantity"] for line in order["line_items"]}
    refund = h.shop.add_refund(7102, amount=None, line_items=everything, shipping=True)
    assert h.shop.orders[7102]["status"] == "refunded"
    await reconcile(h.services)  # the order is `refunded` now: not in SYNC_ORDER_STATUSES
    await h.run_worker()
    assert len(_credits(h, 7102, refund["id"])) == 1
