"""Refunds become settled credit invoices: once each, for exactly the refunded amount, at the right VAT.

Everything real but the two vendors: the fake shop and fake Moneybird behind the real clients,
real Redis with a burst arq worker, and both databases.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.booking import ledger
from app.booking.refunds import book_refund, book_refund_job, queue_refunds, requeue_refunds
from app.constants import REFUND_LOCK_PREFIX
from app.db import transaction
from app.queue import enqueue, order_job, refund_job
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.schema import LedgerEvent, OrderState, RefundRecord, RefundState
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Sanne", last_name="Bakker", email="sanne@example.nl", city="Utrecht")
TEAPOT = CartItem(name="Theepot gietijzer", price=Decimal("34.95"), quantity=1, sku="TP-1")
TEA = CartItem(name="Sencha 100 g", price=Decimal("6.45"), quantity=3, tax_class="reduced-rate", sku="TEA-1")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))


def _order(h: Harness, order_id: int, **cart: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "order_id": order_id,
        "customer": CUSTOMER,
        "items": [TEAPOT, TEA],
        "shipping": [PARCEL],
        "created_at": PAID_AT,
        "paid_at": PAID_AT,
        "completed_at": PAID_AT,
    }
    values.update(cart)
    return h.add_paid_order(**values)


async def _booked_order(h: Harness, order_id: int, **cart: Any) -> dict[str, Any]:
    order = _order(h, order_id, **cart)
    assert (await h.deliver(order_id)).is_success
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    return order


def _line(order: dict[str, Any], name: str) -> dict[str, Any]:
    return next(line for line in order["line_items"] if line["name"] == name)


async def _refund_record(h: Harness, refund_id: int) -> RefundRecord:
    async with h.sessions() as session:
        record = await session.get(RefundRecord, refund_id)
    assert record is not None
    return record


def _credits(h: Harness) -> list[dict[str, Any]]:
    return [inv for inv in h.moneybird.sales_invoices.values() if " refund " in (inv.get("reference") or "")]


def _credit_for(h: Harness, order_number: str, refund_id: int) -> dict[str, Any]:
    reference = f"WooCommerce #{order_number} refund {refund_id}"
    found = [inv for inv in h.moneybird.sales_invoices.values() if inv.get("reference") == reference]
    assert len(found) == 1, f"{len(found)} credit invoices for {reference}"
    return found[0]


def _rate_id(h: Harness, percentage: str) -> str:
    adm = h.moneybird.administration()
    return next(
        rate_id
        for rate_id, rate in adm.tax_rates.items()
        if rate.percentage == Decimal(percentage)
        and rate.record["tax_rate_type"] == "sales_invoice"
        and not rate.record.get("country")
        and "verlegd" not in rate.record["name"].lower()
    )


def _by_rate(invoice: dict[str, Any]) -> dict[str, Decimal]:
    """Line totals (amount × price, incl. VAT) per tax rate."""
    totals: dict[str, Decimal] = {}
    for detail in invoice["details"]:
        amount = Decimal(detail["amount_decimal"]) * Decimal(detail["price"])
        totals[detail["tax_rate_id"]] = totals.get(detail["tax_rate_id"], Decimal(0)) + amount
    return totals


async def _refund_and_deliver(h: Harness, order_id: int, **refund: Any) -> dict[str, Any]:
    created = h.shop.add_refund(order_id, **refund)
    assert (await h.deliver(order_id)).is_success
    await h.run_worker()
    return created


def _assert_settled(credit: dict[str, Any], amount: Decimal) -> None:
    assert Decimal(credit["total_price_incl_tax"]) == -amount
    assert credit["state"] == "paid"
    assert Decimal(credit["total_unpaid"]) == 0
    assert [Decimal(p["price"]) for p in credit["payments"]] == [-amount]


# ── the bullets of the issue ─────────────────────────────────────────────────────────────────


async def _queue_order_version(h: Harness, order_id: int) -> None:
    """What the booking job gets for an `order.updated` of a booked order, whatever intake decided."""
    modified = datetime.fromisoformat(h.shop.orders[order_id]["date_modified_gmt"]).replace(tzinfo=UTC)
    await enqueue(h.redis, order_job(order_id, modified, reason="test"))
    await h.run_worker()


async def test_a_full_refund_becomes_one_credit_invoice_for_the_order_total(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5101)
    everything = {line["id"]: line["quantity"] for line in order["line_items"]}
    refund = h.shop.add_refund(5101, amount=None, line_items=everything, shipping=True)
    assert h.shop.orders[5101]["status"] == "refunded"
    await _queue_order_version(h, 5101)
    credit = _credit_for(h, "5101", refund["id"])
    _assert_settled(credit, Decimal(order["total"]))
    assert credit["state"] == "paid"
    assert credit["invoice_id"]
    original = h.invoices_for("5101")[0]
    # The credit mirrors the invoice per rate, and the original stays paid.
    assert {rate: -total for rate, total in _by_rate(credit).items()} == _by_rate(original)
    assert original["state"] == "paid"
    record = await _refund_record(h, refund["id"])
    assert record.state == RefundState.BOOKED
    assert (record.amount, record.credit_total) == (Decimal(order["total"]), -Decimal(order["total"]))
    assert record.credit_invoice_number == credit["invoice_id"]


async def test_the_shops_delivery_of_a_booked_order_it_refunded_in_full_is_queued_and_credited(
    harness: Harness,
) -> None:
    # "refunded" is not a status woobird books; intake still queues the order, for its refund.
    h = harness
    order = await _booked_order(h, 5111)
    everything = {line["id"]: line["quantity"] for line in order["line_items"]}
    refund = h.shop.add_refund(5111, amount=None, line_items=everything, shipping=True)
    assert h.shop.orders[5111]["status"] == "refunded"

    answer = await h.deliver(5111)
    assert answer.status_code == 202, answer.text
    assert answer.json()["outcome"] == "queued"
    await h.run_worker()
    _assert_settled(_credit_for(h, "5111", refund["id"]), Decimal(order["total"]))


async def test_a_booked_order_refunded_and_cancelled_is_still_queued_for_its_refund(
    harness: Harness,
) -> None:
    # "cancelled" is no status woobird books, but the invoice exists and the refund must be credited.
    h = harness
    order = await _booked_order(h, 5112)
    refund = h.shop.add_refund(5112, amount=Decimal("10.00"))
    h.shop.update_order(5112, status="cancelled")

    answer = await h.deliver(5112)
    assert answer.status_code == 202, answer.text
    assert answer.json()["outcome"] == "queued"
    await h.run_worker()
    _assert_settled(_credit_for(h, "5112", refund["id"]), Decimal("10.00"))
    assert len(h.invoices_for(str(order["number"]))) == 1  # not booked a second time


async def test_a_cancelled_order_with_a_refund_that_was_never_booked_books_nothing(harness: Harness) -> None:
    h = harness
    _order(h, 5113)
    h.shop.add_refund(5113, amount=Decimal("10.00"))
    h.shop.update_order(5113, status="cancelled")

    answer = await h.deliver(5113)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] != "queued"
    await h.run_worker()
    assert h.invoices_for("5113") == []


async def test_a_partial_line_refund_credits_only_that_line_at_its_own_rate(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5102)
    tea = _line(order, TEA.name)
    refund = await _refund_and_deliver(h, 5102, amount=None, line_items={tea["id"]: 1})
    expected = (Decimal(tea["total"]) + Decimal(tea["total_tax"])) / 3
    assert Decimal(refund["amount"]) == expected.quantize(Decimal("0.01"))
    credit = _credit_for(h, "5102", refund["id"])
    _assert_settled(credit, Decimal(refund["amount"]))
    assert _by_rate(credit) == {_rate_id(h, "9"): -Decimal(refund["amount"])}
    assert len(_credits(h)) == 1


async def test_an_amount_only_refund_is_spread_over_the_orders_rates_in_proportion(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5103)
    refund = await _refund_and_deliver(h, 5103, amount="10.00", reason="Goodwill")
    credit = _credit_for(h, "5103", refund["id"])
    _assert_settled(credit, Decimal("10.00"))
    parts = {rate: -total for rate, total in _by_rate(credit).items()}
    original = _by_rate(h.invoices_for("5103")[0])
    whole = sum(original.values(), Decimal(0))
    assert set(parts) == set(original)
    for rate, part in parts.items():
        assert abs(part - Decimal("10.00") * original[rate] / whole) <= Decimal("0.01")
    record = await _refund_record(h, refund["id"])
    assert record.state == RefundState.BOOKED
    assert record.reason == "Goodwill"
    assert Decimal(order["total"]) > 10


async def test_a_shipping_refund_is_credited_at_the_shipping_rate(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5104)
    refund = await _refund_and_deliver(h, 5104, amount=None, shipping=True)
    shipping = order["shipping_lines"][0]
    gross = Decimal(shipping["total"]) + Decimal(shipping["total_tax"])
    assert Decimal(refund["amount"]) == gross
    credit = _credit_for(h, "5104", refund["id"])
    _assert_settled(credit, gross)
    assert _by_rate(credit) == {_rate_id(h, "21"): -gross}
    assert "PostNL pakket" in credit["details"][0]["description"]


async def test_two_refunds_on_one_order_become_two_credit_invoices(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5105)
    first = h.shop.add_refund(5105, amount=None, line_items={_line(order, TEAPOT.name)["id"]: 1})
    second = h.shop.add_refund(5105, amount="2.50", reason="Late delivery")
    assert (await h.deliver(5105)).is_success
    await h.run_worker()
    _assert_settled(_credit_for(h, "5105", first["id"]), Decimal(first["amount"]))
    _assert_settled(_credit_for(h, "5105", second["id"]), Decimal("2.50"))
    assert len(_credits(h)) == 2
    assert len(h.invoices_for("5105")) == 1


async def test_a_refund_before_booking_waits_for_the_invoice(harness: Harness) -> None:
    h = harness
    order = _order(h, 5106)
    refund = h.shop.add_refund(5106, amount="5.00")
    # The order is known but not booked when the refund's job runs: it must not credit anything.
    assert (await h.deliver(5106)).is_success
    assert await book_refund(h.services, order_id=5106, refund_id=refund["id"], reason="test") == "waiting"
    assert _credits(h) == []
    await h.run_worker()
    record = await h.record(5106)
    assert record is not None
    assert record.state == OrderState.BOOKED
    credit = _credit_for(h, "5106", refund["id"])
    _assert_settled(credit, Decimal("5.00"))
    assert int(credit["id"]) > int(h.invoices_for("5106")[0]["id"])
    assert Decimal(order["total"]) > 5


async def test_duplicate_deliveries_credit_each_refund_once(harness: Harness) -> None:
    h = harness
    await _booked_order(h, 5107)
    refund = h.shop.add_refund(5107, amount="7.00")
    for _ in range(3):
        assert (await h.deliver(5107)).is_success
    await asyncio.gather(h.run_worker(), h.run_worker())
    # Later deliveries of the same order (a note, a status save) change nothing.
    h.shop.update_order(5107, customer_note="Bedankt!")
    assert (await h.deliver(5107)).is_success
    await h.run_worker()
    await enqueue(h.redis, refund_job(order_id=5107, refund_id=refund["id"], reason="again"))
    await h.run_worker()
    assert len(_credits(h)) == 1
    _assert_settled(_credit_for(h, "5107", refund["id"]), Decimal("7.00"))


async def test_concurrent_jobs_for_one_refund_make_one_credit_invoice(harness: Harness) -> None:
    h = harness
    await _booked_order(h, 5108)
    refund = h.shop.add_refund(5108, amount="3.00")
    await queue_refunds(h.services, order=await h.services.shop.get_order(5108))
    ctx: dict[str, Any] = {"services": h.services, "job_try": 1}
    results = await asyncio.gather(
        *(book_refund_job(ctx, 5108, refund["id"], "race") for _ in range(4)), return_exceptions=True
    )
    outcomes = [r if isinstance(r, str) else type(r).__name__ for r in results]
    assert outcomes.count("booked") == 1, outcomes
    assert set(outcomes) <= {"booked", "Retry"}
    assert len(_credits(h)) == 1


async def test_a_lost_answer_to_the_create_is_adopted_by_reference(harness: Harness) -> None:
    h = harness
    await _booked_order(h, 5109)
    h.moneybird.fail_next("POST /sales_invoices", kind="lost")
    refund = await _refund_and_deliver(h, 5109, amount="4.00")
    assert len(_credits(h)) == 1
    _assert_settled(_credit_for(h, "5109", refund["id"]), Decimal("4.00"))
    async with h.sessions() as session:
        steps = (
            (
                await session.execute(
                    select(LedgerEvent.step)
                    .where(LedgerEvent.refund_id == refund["id"])
                    .order_by(LedgerEvent.id)
                )
            )
            .scalars()
            .all()
        )
    assert "adopted" in steps


async def test_a_crash_after_creating_the_credit_invoice_resumes_without_a_second(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await _booked_order(h, 5110)
    refund = h.shop.add_refund(5110, amount="6.00")
    real_create = h.services.moneybird.create_sales_invoice

    async def create_then_die(invoice: Any) -> Any:
        await real_create(invoice)
        raise KeyboardInterrupt("worker killed")  # dies before the ledger learns the id

    monkeypatch.setattr(h.services.moneybird, "create_sales_invoice", create_then_die)
    await queue_refunds(h.services, order=await h.services.shop.get_order(5110))
    with pytest.raises(KeyboardInterrupt):
        await book_refund(h.services, order_id=5110, refund_id=refund["id"], reason="test")
    monkeypatch.setattr(h.services.moneybird, "create_sales_invoice", real_create)
    assert len(_credits(h)) == 1
    record = await _refund_record(h, refund["id"])
    assert (record.state, record.credit_invoice_id) == (RefundState.QUEUED, None)

    await h.redis.delete(f"{REFUND_LOCK_PREFIX}{refund['id']}")
    assert await book_refund(h.services, order_id=5110, refund_id=refund["id"], reason="test") == "booked"
    assert len(_credits(h)) == 1
    _assert_settled(_credit_for(h, "5110", refund["id"]), Decimal("6.00"))


# ── deletion, reconciliation, refusal, external invoices ─────────────────────────────────────


async def test_a_refund_deleted_after_crediting_is_reported(harness: Harness) -> None:
    h = harness
    await _booked_order(h, 5111)
    refund = await _refund_and_deliver(h, 5111, amount="8.00")
    assert (await _refund_record(h, refund["id"])).state == RefundState.BOOKED
    h.shop.delete_refund(5111, refund["id"])
    assert (await h.deliver(5111)).is_success
    await h.run_worker()
    record = await _refund_record(h, refund["id"])
    assert record.state == RefundState.DELETED
    assert record.error is not None
    assert "after woobird credited it" in record.error
    assert record.error.endswith("if the refund was a mistake, reverse it in Moneybird")  # what to do
    assert record.credit_invoice_id is not None  # the credit stays; a person decides
    async with h.sessions() as session:
        events = await ledger.events_for(session, 5111)
    deleted = [e for e in events if e.step == "refund_deleted"]
    assert [(e.refund_id, e.message) for e in deleted] == [(refund["id"], record.error)]
    assert len(_credits(h)) == 1


async def test_a_queued_refund_whose_order_is_being_booked_again_waits_and_says_so(harness: Harness) -> None:
    h = harness
    await _booked_order(h, 5114)
    refund = h.shop.add_refund(5114, amount="2.50")
    assert await queue_refunds(h.services, order=await h.services.shop.get_order(5114)) == 1
    async with transaction(h.sessions) as session:  # a rebooking took the order back into booking
        await ledger.update_order(session, 5114, state=OrderState.BOOKING.value)

    assert await book_refund(h.services, order_id=5114, refund_id=refund["id"], reason="test") == "waiting"

    assert (await _refund_record(h, refund["id"])).state == RefundState.WAITING
    async with h.sessions() as session:
        events = [(e.step, e.message) for e in await ledger.events_for(session, 5114)]
    assert events[-1] == ("refund", "waiting for the order to be booked")  # the order page says why
    assert _credits(h) == []


async def test_a_refund_deleted_before_crediting_leaves_nothing_to_undo(harness: Harness) -> None:
    h = harness
    order = _order(h, 5112)
    refund = h.shop.add_refund(5112, amount="1.00")
    async with transaction(h.sessions) as session:
        await ledger.record_delivery(
            session, order_id=5112, order_number="5112", date_modified=PAID_AT, date_paid=PAID_AT
        )
    await queue_refunds(h.services, order=await h.services.shop.get_order(5112))
    assert (await _refund_record(h, refund["id"])).state == RefundState.WAITING
    h.shop.delete_refund(5112, refund["id"])
    assert (await h.deliver(5112)).is_success
    await h.run_worker()
    record = await _refund_record(h, refund["id"])
    assert record.state == RefundState.DELETED
    assert record.credit_invoice_id is None
    assert _credits(h) == []
    assert order["id"] == 5112


async def test_reconciliation_requeues_refunds_left_without_a_job(harness: Harness) -> None:
    h = harness
    await _booked_order(h, 5113)
    refund = h.shop.add_refund(5113, amount="2.00")
    await queue_refunds(h.services, order=await h.services.shop.get_order(5113))
    await h.redis.flushdb()  # the queued job is lost; the ledger still knows
    assert (await _refund_record(h, refund["id"])).state == RefundState.QUEUED
    assert await requeue_refunds(h.services) == 1
    await h.run_worker()
    assert (await _refund_record(h, refund["id"])).state == RefundState.BOOKED
    assert await requeue_refunds(h.services) == 0


async def test_a_refund_that_cannot_be_exact_fails_with_the_reason(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5114)
    teapot = _line(order, TEAPOT.name)
    refund = await _refund_and_deliver(h, 5114, amount="5.00", line_items={teapot["id"]: 1})
    record = await _refund_record(h, refund["id"])
    assert record.state == RefundState.FAILED
    assert record.error is not None
    assert "only 5.00 was refunded" in record.error
    assert _credits(h) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_external_invoices_are_credited_with_an_external_credit(database_url: str, redis: Any) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, invoice_kind="external_sales_invoice"
    ) as h:
        await _booked_order(h, 5115)
        refund = await _refund_and_deliver(h, 5115, amount="9.99")
        reference = f"WooCommerce #5115 refund {refund['id']}"
        credits = [i for i in h.moneybird.external_sales_invoices.values() if i["reference"] == reference]
        assert len(credits) == 1
        _assert_settled(credits[0], Decimal("9.99"))
        record = await _refund_record(h, refund["id"])
        assert (record.state, record.credit_invoice_number) == (RefundState.BOOKED, reference)


async def test_a_full_refund_delivered_by_webhook_is_credited(harness: Harness) -> None:
    h = harness
    order = await _booked_order(h, 5116)
    everything = {line["id"]: line["quantity"] for line in order["line_items"]}
    refund = await _refund_and_deliver(h, 5116, amount=None, line_items=everything, shipping=True)
    _assert_settled(_credit_for(h, "5116", refund["id"]), Decimal(order["total"]))
