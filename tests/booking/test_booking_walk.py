"""The one booking walk, for both ledger rows and both invoice kinds: an answer lost after any write
leaves exactly one document, paid once, with every Moneybird id written down.

Orders have their own lost-answer tests (test_booking.py); these cover the credit invoice's steps
the refund tests do not: a lost send and a lost payment, in both invoice kinds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis

from app.sandbox.woocommerce.cart import CartItem, Customer
from app.schema import OrderState, RefundRecord, RefundState
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Ilse", last_name="Visser", email="ilse@example.nl", city="Zwolle")
KETTLE = CartItem(name="Fluitketel", price=Decimal("39.95"), quantity=1, sku="FK-1")


def _documents(h: Harness, kind: str) -> dict[str, dict[str, Any]]:
    return h.moneybird.sales_invoices if kind == "sales_invoice" else h.moneybird.external_sales_invoices


@pytest.mark.parametrize(
    ("kind", "lost"),
    [
        ("sales_invoice", "POST /sales_invoices"),
        ("sales_invoice", "PATCH /sales_invoices/{id}/send_invoice"),
        ("sales_invoice", "POST /sales_invoices/{id}/payments"),
        ("external_sales_invoice", "POST /external_sales_invoices"),
        ("external_sales_invoice", "POST /external_sales_invoices/{id}/payments"),
    ],
)
async def test_a_credit_invoice_survives_a_lost_answer_after_each_write(
    database_url: str, redis: ArqRedis, kind: str, lost: str
) -> None:
    async with open_harness(database_url=database_url, redis=redis, invoice_kind=kind) as h:
        h.add_paid_order(
            order_id=6201,
            customer=CUSTOMER,
            items=[KETTLE],
            created_at=PAID_AT,
            paid_at=PAID_AT,
            completed_at=PAID_AT,
        )
        await h.deliver(6201)
        await h.run_worker()
        order = await h.record(6201)
        assert order is not None
        assert order.state == OrderState.BOOKED, order.error
        writes_before = h.moneybird.calls(lost)

        refund = h.shop.add_refund(6201, amount="12.50", reason="Deukje")
        h.moneybird.fail_next(lost, kind="lost")
        await h.deliver(6201)
        await h.run_worker()

        assert h.moneybird.calls(lost) == writes_before + 1  # adopted or seen done, never repeated
        reference = f"WooCommerce #6201 refund {refund['id']}"
        credits = [doc for doc in _documents(h, kind).values() if doc.get("reference") == reference]
        assert len(credits) == 1
        credit = credits[0]
        assert credit["state"] == "paid"
        assert [Decimal(p["price"]) for p in credit["payments"]] == [Decimal("-12.50")]
        async with h.sessions() as session:
            record = await session.get(RefundRecord, refund["id"])
        assert record is not None
        assert record.state == RefundState.BOOKED, record.error
        assert record.credit_invoice_id == str(credit["id"])
        assert record.credit_total == Decimal("-12.50")
        assert record.payment_id == str(credit["payments"][0]["id"])  # adopted when its answer was lost


@pytest.mark.parametrize(
    ("kind", "lost"),
    [
        ("sales_invoice", "POST /sales_invoices/{id}/payments"),
        ("external_sales_invoice", "POST /external_sales_invoices/{id}/payments"),
    ],
)
async def test_a_payment_whose_answer_was_lost_is_written_down_from_the_invoice(
    database_url: str, redis: ArqRedis, kind: str, lost: str
) -> None:
    async with open_harness(database_url=database_url, redis=redis, invoice_kind=kind) as h:
        h.add_paid_order(
            order_id=6202,
            customer=CUSTOMER,
            items=[KETTLE],
            created_at=PAID_AT,
            paid_at=PAID_AT,
            completed_at=PAID_AT,
        )
        h.moneybird.fail_next(lost, kind="lost")
        await h.deliver(6202)
        await h.run_worker()
        record = await h.record(6202)
        assert record is not None
        assert record.state == OrderState.BOOKED, record.error
        (invoice,) = [
            doc for doc in _documents(h, kind).values() if doc.get("reference") == "WooCommerce #6202"
        ]
        assert len(invoice["payments"]) == 1
        assert h.moneybird.calls(lost) == 1
        assert record.payment_id == str(invoice["payments"][0]["id"])
