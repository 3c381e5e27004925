"""ORDER_CHANGES=rebook: a changed order's invoice is credited in full and the order booked as it is now.

Exactly once whatever breaks: for every Moneybird write of a rebooking (the credit's create, send
and payment, then the new invoice's) an answer lost after Moneybird did the work is adopted, and a
worker killed right after it resumes without a second document. Refunds keep working: one credited
before the rebooking stays, one made after it is credited against the new invoice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select

from app.booking.orders import book_order
from app.booking.refunds import book_refund
from app.constants import ORDER_LOCK_PREFIX
from app.moneybird.errors import MoneybirdTimeout
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.schema import (
    Finding,
    FindingKind,
    FindingState,
    OrderState,
    Rebooking,
    RebookState,
    RefundRecord,
    RefundState,
)
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Femke", last_name="Mulder", email="femke@example.nl", city="Leiden")
LAMP = CartItem(name="Bureaulamp", price=Decimal("49.95"), quantity=1, sku="LAMP-1")
BULB = CartItem(name="Lamp E27", price=Decimal("4.49"), quantity=3, tax_class="reduced-rate", sku="E27")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))
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
SALES = "sales_invoice"
EXTERNAL = "external_sales_invoice"
# The writes of a rebooking, in order: (client method, which call of it during the rebooking).
WRITES = {
    SALES: [
        ("create_sales_invoice", 1),  # the credit invoice
        ("send_sales_invoice", 1),
        ("create_sales_invoice_payment", 1),
        ("create_sales_invoice", 2),  # the new version
        ("send_sales_invoice", 2),
        ("create_sales_invoice_payment", 2),
    ],
    EXTERNAL: [
        ("create_external_sales_invoice", 1),
        ("create_external_sales_invoice_payment", 1),
        ("create_external_sales_invoice", 2),
        ("create_external_sales_invoice_payment", 2),
    ],
}
CASES = [(kind, method, nth) for kind, writes in WRITES.items() for method, nth in writes]


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after the write runs, not even an except clause for Exception."""


@pytest.fixture(params=[SALES, EXTERNAL])
async def h(request: pytest.FixtureRequest, database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(
        database_url=database_url, redis=redis, invoice_kind=request.param, order_changes="rebook"
    ) as wired:
        yield wired


def _documents(h: Harness) -> dict[str, dict[str, Any]]:
    if h.settings.invoice_kind == EXTERNAL:
        return h.moneybird.external_sales_invoices
    return h.moneybird.sales_invoices


def _by_reference(h: Harness, reference: str) -> list[dict[str, Any]]:
    return [doc for doc in _documents(h).values() if doc.get("reference") == reference]


def _add(h: Harness, order_id: int) -> None:
    h.add_paid_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=[LAMP],
        shipping=[PARCEL],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )


def _edit(h: Harness, order_id: int) -> Decimal:
    """An admin adds bulbs and recalculates: the order total WooCommerce now has."""
    fresh = build_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=[LAMP, BULB],
        shipping=[PARCEL],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )
    h.shop.update_order(order_id, **{key: fresh[key] for key in _EDITED})
    return Decimal(fresh["total"])


async def _booked(h: Harness, order_id: int) -> Decimal:
    _add(h, order_id)
    await h.deliver(order_id)
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    assert record.invoice_total is not None
    return record.invoice_total


def _paid_once(document: dict[str, Any], total: Decimal) -> None:
    assert Decimal(str(document["total_price_incl_tax"])) == total
    assert document["state"] == "paid"
    assert [Decimal(str(p["price"])) for p in document["payments"]] == [total]


async def _assert_rebooked_once(h: Harness, order_id: int, *, old_total: Decimal, new_total: Decimal) -> None:
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    (original,) = _by_reference(h, f"WooCommerce #{order_id}")
    (credit,) = _by_reference(h, f"WooCommerce #{order_id} v2 credit")
    (new,) = _by_reference(h, f"WooCommerce #{order_id} v2")
    _paid_once(original, old_total)  # the first invoice stays as booked, and paid
    _paid_once(credit, -old_total)
    _paid_once(new, new_total)
    assert sorted(d["tax_rate_id"] for d in credit["details"]) == sorted(
        d["tax_rate_id"] for d in original["details"]
    )
    assert (record.invoice_id, record.invoice_total, record.invoice_version) == (str(new["id"]), new_total, 2)
    async with h.sessions() as session:
        (rebooking,) = (await session.execute(select(Rebooking))).scalars().all()
        (finding,) = (
            (await session.execute(select(Finding).where(Finding.order_id == order_id))).scalars().all()
        )
    assert (rebooking.state, rebooking.old_invoice_id) == (RebookState.DONE, str(original["id"]))
    assert (rebooking.credit_invoice_id, rebooking.new_invoice_id) == (str(credit["id"]), str(new["id"]))
    assert rebooking.credit_total == -old_total
    assert (finding.kind, finding.state) == (FindingKind.ORDER_CHANGED, FindingState.RESOLVED)
    assert (finding.resolution or "").startswith("rebooked:")


async def test_a_changed_order_is_credited_in_full_and_booked_as_it_is_now(h: Harness) -> None:
    old_total = await _booked(h, 8201)
    new_total = _edit(h, 8201)
    assert new_total != old_total
    await h.deliver(8201)
    await h.run_worker()
    await _assert_rebooked_once(h, 8201, old_total=old_total, new_total=new_total)

    writes = h.moneybird.calls("POST *") + h.moneybird.calls("PATCH *")
    for _ in range(2):  # later deliveries of the rebooked version change nothing
        h.shop.update_order(8201, customer_note="Bedankt")
        await h.deliver(8201)
        await h.run_worker()
    assert h.moneybird.calls("POST *") + h.moneybird.calls("PATCH *") == writes
    await _assert_rebooked_once(h, 8201, old_total=old_total, new_total=new_total)


def _after_nth(h: Harness, method: str, nth: int, error: BaseException) -> list[int]:
    """Make the `nth` call of a client method do its work in Moneybird, then fail with `error`."""
    real: Callable[..., Awaitable[Any]] = getattr(h.services.moneybird, method)
    seen = [0]

    async def then_fail(*args: Any) -> Any:
        result = await real(*args)
        seen[0] += 1
        if seen[0] == nth:
            raise error
        return result

    setattr(h.services.moneybird, method, then_fail)
    return seen


@pytest.mark.parametrize(("kind", "method", "nth"), CASES)
async def test_an_answer_lost_after_each_write_of_a_rebooking_is_adopted(
    database_url: str, redis: ArqRedis, kind: str, method: str, nth: int
) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, invoice_kind=kind, order_changes="rebook"
    ) as h:
        old_total = await _booked(h, 8202)
        new_total = _edit(h, 8202)
        seen = _after_nth(h, method, nth, MoneybirdTimeout("no answer in time; it may have been carried out"))
        await h.deliver(8202)
        await h.run_worker()
        assert seen[0] == 2  # one for the credit, one for the new version: none made twice
        await _assert_rebooked_once(h, 8202, old_total=old_total, new_total=new_total)


@pytest.mark.parametrize(("kind", "method", "nth"), CASES)
async def test_a_worker_killed_after_each_write_of_a_rebooking_resumes_without_a_second(
    database_url: str, redis: ArqRedis, kind: str, method: str, nth: int
) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, invoice_kind=kind, order_changes="rebook"
    ) as h:
        old_total = await _booked(h, 8203)
        new_total = _edit(h, 8203)
        seen = _after_nth(h, method, nth, WorkerKilled())
        with pytest.raises(WorkerKilled):
            await book_order(h.services, order_id=8203, reason="test")
        record = await h.record(8203)
        assert record is not None
        assert record.state == OrderState.BOOKING  # what reconciliation requeues once it is stale

        await h.redis.delete(f"{ORDER_LOCK_PREFIX}8203")
        assert await book_order(h.services, order_id=8203, reason="resumed") == OrderState.BOOKED
        assert seen[0] == 2
        await _assert_rebooked_once(h, 8203, old_total=old_total, new_total=new_total)


async def test_refunds_before_and_after_a_rebooking_credit_the_invoice_of_their_time(h: Harness) -> None:
    old_total = await _booked(h, 8204)
    first_invoice = (await h.record(8204)).invoice_id  # type: ignore[union-attr]
    before = h.shop.add_refund(8204, amount="5.00", reason="Kras")
    await h.deliver(8204)
    await h.run_worker()
    new_total = _edit(h, 8204)
    await h.deliver(8204)
    await h.run_worker()
    after = h.shop.add_refund(8204, amount="7.50", reason="Te laat")
    await h.deliver(8204)
    await h.run_worker()

    await _assert_rebooked_once(h, 8204, old_total=old_total, new_total=new_total)
    record = await h.record(8204)
    assert record is not None
    async with h.sessions() as session:
        refunds = {r.refund_id: r for r in (await session.execute(select(RefundRecord))).scalars().all()}
    assert refunds[before["id"]].state == RefundState.BOOKED
    assert refunds[before["id"]].credited_invoice_id == first_invoice
    assert refunds[after["id"]].state == RefundState.BOOKED
    assert refunds[after["id"]].credited_invoice_id == record.invoice_id != first_invoice
    for refund, amount in ((before, Decimal("-5.00")), (after, Decimal("-7.50"))):
        (credit,) = _by_reference(h, f"WooCommerce #8204 refund {refund['id']}")
        _paid_once(credit, amount)
        assert credit["contact_id"] == record.contact_id


async def test_a_refund_made_while_the_order_is_rebooked_waits_for_the_new_invoice(h: Harness) -> None:
    await _booked(h, 8205)
    _edit(h, 8205)
    method = (
        "create_external_sales_invoice" if h.settings.invoice_kind == EXTERNAL else "create_sales_invoice"
    )
    _after_nth(h, method, 1, WorkerKilled())  # killed right after creating the credit invoice
    with pytest.raises(WorkerKilled):
        await book_order(h.services, order_id=8205, reason="test")
    refund = h.shop.add_refund(8205, amount="3.00")
    await h.deliver(8205)  # the refund's delivery, while the order is being rebooked
    assert await book_refund(h.services, order_id=8205, refund_id=refund["id"], reason="test") == "waiting"

    await h.redis.delete(f"{ORDER_LOCK_PREFIX}8205")
    await h.run_worker()
    record = await h.record(8205)
    assert record is not None
    assert (record.state, record.invoice_version) == (OrderState.BOOKED, 2)
    async with h.sessions() as session:
        credited = await session.get(RefundRecord, refund["id"])
    assert credited is not None
    assert (credited.state, credited.credited_invoice_id) == (RefundState.BOOKED, record.invoice_id)


async def test_a_changed_order_that_no_longer_qualifies_is_not_rebooked(h: Harness) -> None:
    await _booked(h, 8206)
    writes = h.moneybird.calls("POST *") + h.moneybird.calls("PATCH *")
    _edit(h, 8206)
    await h.deliver(8206)
    h.shop.update_order(8206, status="cancelled")  # before the job reads it (intake ignores cancelled)
    await h.run_worker()
    assert h.moneybird.calls("POST *") + h.moneybird.calls("PATCH *") == writes
    async with h.sessions() as session:
        (finding,) = (await session.execute(select(Finding).where(Finding.order_id == 8206))).scalars().all()
        assert (await session.execute(select(Rebooking))).scalars().all() == []
    assert finding.state == FindingState.OPEN
    assert "not rebooked while it does not qualify" in finding.message


async def test_a_credit_moneybird_refuses_stops_the_rebooking_and_says_why_on_both_rows(h: Harness) -> None:
    old_total = await _booked(h, 8207)
    (original,) = _by_reference(h, "WooCommerce #8207")
    _edit(h, 8207)
    route = "POST /external_sales_invoices" if h.settings.invoice_kind == EXTERNAL else "POST /sales_invoices"
    h.moneybird.fail_next(route, kind="status", status=422)

    await h.deliver(8207)
    await h.run_worker()

    record = await h.record(8207)
    assert record is not None
    assert record.state == OrderState.FAILED
    assert (record.error or "").startswith("rebooking stopped crediting ")
    async with h.sessions() as session:
        (rebooking,) = (await session.execute(select(Rebooking))).scalars().all()
    assert rebooking.old_invoice_id == str(original["id"])
    assert rebooking.state == RebookState.CREDITING  # Retry on the dashboard goes on from here
    assert rebooking.error is not None
    assert rebooking.error in (record.error or "")
    _paid_once(original, old_total)  # the books as they were: no credit, no new version
    assert _by_reference(h, "WooCommerce #8207 v2 credit") == []


async def test_the_credit_of_an_archived_contact_goes_to_its_replacement_and_the_rebooking_keeps_it(
    h: Harness,
) -> None:
    old_total = await _booked(h, 8208)
    (original,) = _by_reference(h, "WooCommerce #8208")
    h.moneybird.archive_contact(str(original["contact_id"]))  # the bookkeeper archived Femke
    new_total = _edit(h, 8208)

    await h.deliver(8208)
    await h.run_worker()

    record = await h.record(8208)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    (credit,) = _by_reference(h, "WooCommerce #8208 v2 credit")
    (new,) = _by_reference(h, "WooCommerce #8208 v2")
    _paid_once(credit, -old_total)
    _paid_once(new, new_total)
    assert credit["contact_id"] != original["contact_id"]
    assert new["contact_id"] == credit["contact_id"]
    async with h.sessions() as session:
        (rebooking,) = (await session.execute(select(Rebooking))).scalars().all()
    assert rebooking.contact_id == credit["contact_id"]  # a lost answer would be looked for under it


async def test_a_rebooking_to_a_replacement_contact_leaves_other_orders_rebookings_alone(h: Harness) -> None:
    await _booked(h, 8209)
    _edit(h, 8209)
    await h.deliver(8209)
    await h.run_worker()  # 8209: rebooked as v2, to its own contact
    await _booked(h, 8210)
    (original,) = _by_reference(h, "WooCommerce #8210")
    h.moneybird.archive_contact(str(original["contact_id"]))
    _edit(h, 8210)
    await h.deliver(8210)
    await h.run_worker()  # 8210's v2 credit goes to a replacement contact

    async with h.sessions() as session:
        rows = {r.order_id: r for r in (await session.execute(select(Rebooking))).scalars().all()}
    (credit_8209,) = _by_reference(h, "WooCommerce #8209 v2 credit")
    (credit_8210,) = _by_reference(h, "WooCommerce #8210 v2 credit")
    assert rows[8210].contact_id == credit_8210["contact_id"]
    assert rows[8209].contact_id != rows[8210].contact_id  # same version, another order: untouched
    assert rows[8209].contact_id in (None, credit_8209["contact_id"])


async def test_a_refused_second_rebooking_leaves_the_first_as_done(h: Harness) -> None:
    await _booked(h, 8211)
    _edit(h, 8211)
    await h.deliver(8211)
    await h.run_worker()  # v2: done
    again = build_order(
        order_id=8211,
        customer=CUSTOMER,
        items=[LAMP, BULB, BULB],
        shipping=[PARCEL],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )
    h.shop.update_order(8211, **{key: again[key] for key in _EDITED})
    route = "POST /external_sales_invoices" if h.settings.invoice_kind == EXTERNAL else "POST /sales_invoices"
    h.moneybird.fail_next(route, kind="status", status=422)
    await h.deliver(8211)
    await h.run_worker()  # v3's credit refused

    async with h.sessions() as session:
        rows = {r.version: r for r in (await session.execute(select(Rebooking))).scalars().all()}
    assert (rows[2].state, rows[2].error) == (RebookState.DONE, None)
    assert rows[3].state == RebookState.CREDITING
    assert rows[3].error is not None


async def test_the_shop_is_told_of_the_full_credit_and_the_new_invoice(h: Harness) -> None:
    await _booked(h, 7101)
    first = await h.record(7101)
    assert first is not None
    _edit(h, 7101)
    await h.deliver(7101)
    await h.run_worker()
    now = await h.record(7101)
    assert now is not None
    assert now.state == OrderState.BOOKED
    kind = "external_sales_invoices" if h.settings.invoice_kind == EXTERNAL else "sales_invoices"
    base = f"https://moneybird.com/{h.moneybird.administration_id}/{kind}/"
    [credit] = [doc for doc in _documents(h).values() if Decimal(doc["total_price_incl_tax"]) < 0]
    notes = [note["note"] for note in sorted(h.shop.notes[7101], key=lambda note: note["id"])]
    # The first invoice, its full credit naming the invoice it cancels, then the new invoice: one each.
    assert len(notes) == 3
    assert f"{base}{first.invoice_id}" in notes[0]
    assert f"{base}{credit['id']}" in notes[1]
    assert f"invoice {first.invoice_number or first.invoice_id} in full" in notes[1]
    assert f"{base}{now.invoice_id}" in notes[2]
