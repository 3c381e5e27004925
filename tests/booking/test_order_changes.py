"""An order that changes after its invoice was booked is noticed on the next delivery or pass.

The invoice keeps what it booked (nothing is written to Moneybird for it);
the change is recorded once as a finding, alerted once, and resolved when the order changes back.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import respx
from arq.connections import ArqRedis
from sqlalchemy import select

from app.booking.reconcile import reconcile
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.schema import Finding, FindingKind, FindingState, OrderRecord, OrderState
from tests.harness import Harness, open_harness

ALERT_HOOK = "https://alerts.example.test/hook"
PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Noor", last_name="Smit", email="noor@example.nl", city="Arnhem")
MUG = CartItem(name="Mok aardewerk", price=Decimal("12.50"), quantity=2, sku="MOK-1")
PLATE = CartItem(name="Bord 24 cm", price=Decimal("18.00"), quantity=1, sku="BORD-1")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))
# The money fields an admin edit of the items recomputes, copied from a freshly built order.
_EDITED = (
    "line_items",
    "shipping_lines",
    "fee_lines",
    "coupon_lines",
    "tax_lines",
    "discount_total",
    "discount_tax",
    "shipping_total",
    "shipping_tax",
    "cart_tax",
    "total",
    "total_tax",
)


@pytest.fixture
def alerts() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(ALERT_HOOK).respond(200)


@pytest.fixture
async def h(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(database_url=database_url, redis=redis, alert_webhook_url=ALERT_HOOK) as wired:
        yield wired


def _cart(order_id: int, items: list[CartItem]) -> dict[str, Any]:
    return build_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=items,
        shipping=[PARCEL],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )


def edit_items(h: Harness, order_id: int, items: list[CartItem]) -> dict[str, Any]:
    """What WooCommerce stores when an admin edits the order's items and recalculates."""
    fresh = _cart(order_id, items)
    return h.shop.update_order(order_id, **{key: fresh[key] for key in _EDITED})


async def _booked(h: Harness, order_id: int) -> dict[str, Any]:
    document = h.add_paid_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=[MUG],
        shipping=[PARCEL],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )
    await h.deliver(order_id)
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    assert record.fingerprint
    return copy.deepcopy(document)  # the shop edits its own copy in place


async def _findings(h: Harness, order_id: int) -> list[Finding]:
    async with h.sessions() as session:
        query = select(Finding).where(Finding.order_id == order_id).order_by(Finding.id)
        return list((await session.execute(query)).scalars().all())


async def test_a_changed_order_is_recorded_once_and_the_invoice_left_alone(
    h: Harness, alerts: respx.Route
) -> None:
    booked = await _booked(h, 8101)
    invoice_before = json.dumps(h.invoices_for("8101"), sort_keys=True, default=str)
    edited = copy.deepcopy(edit_items(h, 8101, [MUG, PLATE]))
    assert Decimal(edited["total"]) > Decimal(booked["total"])

    for _ in range(3):  # the edit, a later note, a reconciliation: one finding, one alert
        await h.deliver(8101)
        await h.run_worker()
    h.shop.update_order(8101, customer_note="Graag bellen")
    await h.deliver(8101)
    await h.run_worker()

    (finding,) = await _findings(h, 8101)
    assert (finding.kind, finding.state) == (FindingKind.ORDER_CHANGED, FindingState.OPEN), finding.resolution
    assert f"total {Decimal(booked['total']).normalize()} → {Decimal(edited['total']).normalize()}" in (
        finding.message
    )
    assert "lines" in finding.message
    assert "noor@example.nl" not in finding.message
    record = await h.record(8101)
    assert record is not None
    assert (record.state, record.invoice_total) == (OrderState.BOOKED, Decimal(booked["total"]))
    assert json.dumps(h.invoices_for("8101"), sort_keys=True, default=str) == invoice_before
    assert h.moneybird.calls("POST /sales_invoices") == 1
    assert alerts.call_count == 1
    assert "changed after it was booked" in alerts.calls.last.request.content.decode()


async def test_a_change_back_resolves_the_finding(h: Harness) -> None:
    await _booked(h, 8102)
    edit_items(h, 8102, [PLATE])
    await h.deliver(8102)
    await h.run_worker()
    edit_items(h, 8102, [MUG])  # the admin undid it
    await h.deliver(8102)
    await h.run_worker()

    (finding,) = await _findings(h, 8102)
    assert finding.state == FindingState.RESOLVED
    assert finding.resolution == "the order is as it was booked again"


async def test_a_second_change_supersedes_the_first(h: Harness) -> None:
    await _booked(h, 8103)
    edit_items(h, 8103, [PLATE])
    await h.deliver(8103)
    await h.run_worker()
    edit_items(h, 8103, [MUG, MUG, PLATE])
    await h.deliver(8103)
    await h.run_worker()

    first, second = await _findings(h, 8103)
    assert (first.state, first.resolution) == (
        FindingState.RESOLVED,
        "superseded by a later change of the order",
    )
    assert second.state == FindingState.OPEN


async def test_a_change_without_a_webhook_is_found_by_the_reconciliation_pass(h: Harness) -> None:
    await _booked(h, 8104)
    await reconcile(h.services)
    h.shop.advance(60)
    h.shop.update_order(8104, billing={**h.shop.orders[8104]["billing"], "city": "Nijmegen"})
    assert await _findings(h, 8104) == []

    report = await reconcile(h.services)
    assert report.queued_ids == [8104]
    await h.run_worker()
    (finding,) = await _findings(h, 8104)
    assert finding.state == FindingState.OPEN
    assert "customer city" in finding.message


async def test_what_does_not_change_the_sale_is_no_change(h: Harness) -> None:
    booked = await _booked(h, 8105)
    h.shop.update_order(8105, customer_note="Bij de buren afgeven", status="completed")
    h.shop.add_refund(8105, amount="5.00", reason="Kras")  # refunds are credited, not a changed order
    await h.deliver(8105)
    await h.run_worker()
    assert await _findings(h, 8105) == []
    assert Decimal(h.shop.orders[8105]["total"]) == Decimal(booked["total"])


async def test_an_order_booked_before_fingerprints_gets_one_without_a_finding(h: Harness) -> None:
    await _booked(h, 8106)
    async with h.sessions() as session, session.begin():
        record = await session.get(OrderRecord, 8106)
        assert record is not None
        record.fingerprint = None
        record.booked_version = None
    edit_items(h, 8106, [PLATE])
    await h.deliver(8106)
    await h.run_worker()
    assert await _findings(h, 8106) == []
    record = await h.record(8106)
    assert record is not None
    assert record.fingerprint  # what the shop has now is what woobird compares with from here on
