"""What a booking leaves in Moneybird besides its lines: how each document was sent, and its dates.

The shop's clock is fixed late in the evening (UTC) so that the local day in Amsterdam, the UTC
day and the day the test runs are three different days: a date taken from the wrong one shows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from structlog.testing import capture_logs

from app.booking import ledger
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.schema import OrderState
from tests.harness import Harness, open_harness

# 23:40 UTC on 2 March is 00:40 on 3 March in Amsterdam (CET, UTC+1).
PAID_AT = datetime(2026, 3, 2, 23, 40, tzinfo=UTC)
PAID_DAY = "2026-03-03"
# The refund happens in summer: 22:30 UTC on 14 July is 00:30 on 15 July (CEST, UTC+2).
REFUNDED_AT = datetime(2026, 7, 14, 22, 30, tzinfo=UTC)
REFUND_DAY = "2026-07-15"

CUSTOMER = Customer(first_name="Noor", last_name="Visser", email="noor@example.nl", city="Leiden")
LAMP = CartItem(name="Bureaulamp", price=Decimal("39.95"), quantity=1, sku="LAMP-1")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))


@pytest.fixture
async def shop_at_paid_time(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(database_url=database_url, redis=redis, start=PAID_AT) as harness:
        yield harness


async def _book(h: Harness, order_id: int, **cart: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "order_id": order_id,
        "customer": CUSTOMER,
        "items": [LAMP],
        "shipping": [PARCEL],
        "created_at": PAID_AT,
        "paid_at": PAID_AT,
        "completed_at": PAID_AT,
    }
    document = h.add_paid_order(**(values | cart))
    assert (await h.deliver(order_id)).status_code == 202
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    return document


def _only_invoice(h: Harness, number: str) -> dict[str, Any]:
    invoices = h.invoices_for(number)
    assert len(invoices) == 1
    return invoices[0]


def _adopted_contact(h: Harness, number: str) -> str:
    contact_id: str = _only_invoice(h, number)["contact_id"]
    assert h.moneybird.contacts[contact_id]["delivery_method"] == "Email"
    return contact_id


def _send_events(document: dict[str, Any]) -> list[str]:
    return [
        event["action"] for event in document["events"] if event["action"].startswith("sales_invoice_send")
    ]


def _contact_that_wants_email(h: Harness) -> dict[str, Any]:
    """A contact made by hand in Moneybird, set to receive its invoices by e-mail: woobird adopts it."""
    return h.moneybird.seed_contact(
        firstname="Noor", lastname="Visser", send_invoices_to_email="noor@example.nl", delivery_method="Email"
    )


async def test_the_invoice_is_sent_manually_even_to_a_contact_that_wants_email(
    shop_at_paid_time: Harness,
) -> None:
    h = shop_at_paid_time
    existing = _contact_that_wants_email(h)
    await _book(h, 8101)
    invoice = _only_invoice(h, "8101")
    assert invoice["contact_id"] == existing["id"]
    assert _send_events(invoice) == ["sales_invoice_send_manually"]


async def test_a_new_contact_is_created_to_be_sent_nothing_by_email(shop_at_paid_time: Harness) -> None:
    h = shop_at_paid_time
    await _book(h, 8102)
    (contact,) = h.moneybird.contacts.values()
    assert contact["delivery_method"] == "Manual"
    assert _send_events(_only_invoice(h, "8102")) == ["sales_invoice_send_manually"]


async def test_the_invoice_is_dated_and_paid_on_the_local_day_of_payment(shop_at_paid_time: Harness) -> None:
    h = shop_at_paid_time
    document = await _book(h, 8103)
    invoice = _only_invoice(h, "8103")
    assert invoice["invoice_date"] == PAID_DAY
    assert [payment["payment_date"] for payment in invoice["payments"]] == [PAID_DAY]
    assert invoice["paid_at"] == PAID_DAY
    assert Decimal(invoice["total_price_incl_tax"]) == Decimal(document["total"])


async def test_the_credit_invoice_is_sent_manually_and_paid_back_on_the_local_refund_day(
    shop_at_paid_time: Harness,
) -> None:
    h = shop_at_paid_time
    _contact_that_wants_email(h)
    await _book(h, 8104)
    h.shop.advance((REFUNDED_AT - PAID_AT).total_seconds())
    refund = h.shop.add_refund(8104, amount="10.00")
    assert (await h.deliver(8104)).is_success
    await h.run_worker()
    reference = f"WooCommerce #8104 refund {refund['id']}"
    (credit,) = [inv for inv in h.moneybird.sales_invoices.values() if inv["reference"] == reference]
    assert credit["invoice_date"] == REFUND_DAY
    assert [(p["payment_date"], Decimal(p["price"])) for p in credit["payments"]] == [
        (REFUND_DAY, Decimal("-10.00"))
    ]
    assert credit["contact_id"] == _adopted_contact(h, "8104")
    assert _send_events(credit) == ["sales_invoice_send_manually"]
    # The original invoice keeps its own day and its one payment.
    original = _only_invoice(h, "8104")
    assert [payment["payment_date"] for payment in original["payments"]] == [PAID_DAY]


async def test_amounts_in_log_lines_and_the_ledger_have_two_decimals(shop_at_paid_time: Harness) -> None:
    h = shop_at_paid_time
    # 20.67 + 21 % = 25.01, and 5.99 shipping: 31.00, which Moneybird writes as "31.0".
    with capture_logs() as logs:
        document = await _book(h, 8105, items=[CartItem(name="Kussen", price=Decimal("20.67"), quantity=1)])
        h.shop.advance(3600)
        h.shop.add_refund(8105, amount="10.00")
        assert (await h.deliver(8105)).is_success
        await h.run_worker()
    assert (document["total"], _only_invoice(h, "8105")["total_price_incl_tax"]) == ("31.00", "31.0")
    (booked,) = [entry for entry in logs if entry["event"] == "order booked"]
    (credited,) = [entry for entry in logs if entry["event"] == "refund credited"]
    assert (booked["total"], credited["total"]) == ("31.00", "-10.00")
    async with h.sessions() as session:
        messages = [event.message for event in await ledger.events_for(session, 8105)]
    amounts = [amount for message in messages for amount in re.findall(r"-?\d+\.\d+", message)]
    assert amounts
    assert all(re.fullmatch(r"-?\d+\.\d\d", amount) for amount in amounts), messages
    assert any("paid back" in m or "settled as a payment of -10.00" in m for m in messages), messages
