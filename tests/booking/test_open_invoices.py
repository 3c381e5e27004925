"""Open invoices, paid later: an unpaid bank-transfer order is booked as an open invoice, and its payment
reaches the other side exactly once, whichever side knows first and however often it is told.

Every test runs the real web app, Redis, SQL and worker against the fake shop (whose `PUT /orders/{id}`
saves the order and queues its order.updated delivery, as WooCommerce does) and the fake Moneybird (whose
`register_payment_from_bank` records a payment as bank reconciliation does). The Moneybird webhook that
will queue the settle job is not part of this branch: tests queue the job (or call the service) directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from rich.console import Console
from sqlalchemy import select

from app.booking import ledger
from app.booking.open_invoices import enqueue_settle, settle_invoice
from app.booking.orders import book_order
from app.booking.reconcile import reconcile
from app.constants import ORDER_LOCK_PREFIX
from app.moneybird.errors import MoneybirdTimeout
from app.report import monthly_report, render_report
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.schema import Finding, FindingKind, FindingState, OrderState, OrderStep
from app.settings import ConfigurationError, load_settings
from app.woocommerce.errors import WooCommerceRejected, WooCommerceTransient
from tests.conftest import ADMIN_TOKEN
from tests.harness import Harness, open_harness

ORDERED_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Femke", last_name="Mulder", email="femke@example.nl", city="Leiden")
LAMP = CartItem(name="Bureaulamp", price=Decimal("49.95"), quantity=1, sku="LAMP-1")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))
SETTINGS: dict[str, Any] = {
    "open_invoice_payment_methods": ["bacs", "cheque"],
    "sync_since": datetime(2026, 1, 1, tzinfo=UTC),
}


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after the write runs, not even an except clause for Exception."""


@pytest.fixture
async def h(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(database_url=database_url, redis=redis, **SETTINGS) as wired:
        yield wired


def _add_unpaid(h: Harness, order_id: int, *, method: str = "bacs", customer: Customer = CUSTOMER) -> None:
    document = build_order(
        order_id=order_id,
        customer=customer,
        items=[LAMP],
        shipping=[PARCEL],
        status="on-hold",
        created_at=ORDERED_AT,
        paid_at=None,
        payment_method=method,
        payment_method_title="Direct bank transfer",
    )
    h.shop.add_order(document)


async def _open(h: Harness, order_id: int, **kwargs: Any) -> dict[str, Any]:
    """The order placed unpaid, delivered and booked: its open invoice in the fake Moneybird."""
    _add_unpaid(h, order_id, **kwargs)
    assert (await h.deliver(order_id)).status_code == 202
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT, record.error
    (invoice,) = h.invoices_for(str(order_id))
    assert record.invoice_id == invoice["id"]
    return invoice


async def _settle(h: Harness, invoice_id: str, *, times: int = 1) -> None:
    # Stands for the Moneybird webhook / synchronization poll (another branch), which queue this job.
    for _ in range(times):
        await enqueue_settle(h.services, invoice_id, reason="webhook")
        await h.run_worker()


def _payments(invoice: dict[str, Any]) -> list[Decimal]:
    return [Decimal(str(p["price"])) for p in invoice["payments"]]


def _puts(h: Harness) -> int:
    return len([call for call in h.shop.calls("PUT /orders/{id}") if call.status == 200])


async def _events(h: Harness, order_id: int, step: str) -> list[str]:
    async with h.sessions() as session:
        return [e.message for e in await ledger.events_for(session, order_id) if e.step == step]


async def _findings(h: Harness, kind: FindingKind) -> list[Finding]:
    async with h.sessions() as session:
        return list((await session.execute(select(Finding).where(Finding.kind == kind.value))).scalars())


async def _deliver_saves_and_run(h: Harness) -> list[int]:
    """WooCommerce delivers every order the REST API saved; the worker takes what comes of it."""
    saved, h.shop.saved_orders = h.shop.saved_orders, []
    for order_id in saved:
        assert (await h.deliver(order_id)).status_code in (200, 202)
    await h.run_worker()
    return saved


def _after(h: Harness, client: Any, method: str, error: BaseException, *, before: bool = False) -> list[int]:
    """Make the first call of a client method do its work (unless `before`) and then fail with `error`."""
    real: Callable[..., Awaitable[Any]] = getattr(client, method)
    seen = [0]

    async def failing(*args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == 1:
            if not before:
                await real(*args, **kwargs)
            raise error
        return await real(*args, **kwargs)

    setattr(client, method, failing)
    return seen


# ── booking ──────────────────────────────────────────────────────────────────────────────────


async def test_an_unpaid_bank_transfer_order_is_booked_as_an_open_invoice(h: Harness) -> None:
    invoice = await _open(h, 9101)
    assert invoice["state"] in ("open", "late")  # unpaid; late once its due date has passed
    assert invoice["payments"] == []
    assert Decimal(invoice["total_unpaid"]) == Decimal(invoice["total_price_incl_tax"]) > 0
    assert invoice["invoice_date"] == "2026-03-02"  # the day it was ordered
    assert "sales_invoice_send_manually" in [e["action"] for e in invoice["events"]]
    record = await h.record(9101)
    assert record is not None
    assert (record.step, record.payment_id, record.invoice_number) == (
        OrderStep.INVOICE_SENT,
        None,
        invoice["invoice_id"],
    )
    (note,) = h.shop.notes[9101]
    assert f"open invoice {invoice['invoice_id']}" in note["note"]
    assert "awaiting payment" in note["note"]
    assert h.shop.orders[9101]["status"] == "on-hold"  # the shop is not told anything else
    # Delivered again unchanged, it stays as it is.
    h.shop.update_order(9101, customer_note="Graag snel")
    await h.deliver(9101)
    await h.run_worker()
    assert h.invoices_for("9101") == [invoice]
    assert invoice["payments"] == []


async def test_the_month_report_counts_an_open_invoice_as_booked_and_says_it_awaits_payment(
    h: Harness,
) -> None:
    invoice = await _open(h, 9107)
    month = f"{datetime.now(UTC):%Y-%m}"  # unpaid: the report places it by when woobird recorded it
    report = await monthly_report(h.sessions, month=month)
    assert (report.awaiting_payment, report.booked) == (1, 0)
    assert report.moneybird_total == Decimal(invoice["total_price_incl_tax"])
    assert report.differences == []  # booked, so not "not booked"
    english, dutch = Console(record=True, width=200), Console(record=True, width=200)
    render_report(report, english, language="en")
    render_report(report, dutch, language="nl")
    assert "open invoices awaiting payment 1" in english.export_text()
    assert "open facturen wachtend op betaling 1" in dutch.export_text()


async def test_an_open_invoice_whose_order_changes_unpaid_is_reported(h: Harness) -> None:
    invoice = await _open(h, 9108)
    more = build_order(
        order_id=9108,
        customer=CUSTOMER,
        items=[CartItem(name="Bureaulamp", price=Decimal("49.95"), quantity=2, sku="LAMP-1")],
        shipping=[PARCEL],
        status="on-hold",
        created_at=ORDERED_AT,
        payment_method="bacs",
    )
    h.shop.update_order(
        9108, **{key: more[key] for key in ("line_items", "tax_lines", "total", "total_tax", "cart_tax")}
    )
    await h.deliver(9108)
    await h.run_worker()
    (finding,) = await _findings(h, FindingKind.ORDER_CHANGED)
    assert "open invoice keeps the booked figures" in finding.message
    assert h.invoices_for("9108") == [invoice]
    record = await h.record(9108)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT


async def test_reconciliation_books_an_open_invoice_a_webhook_missed_and_heals_a_missed_cancel(
    h: Harness,
) -> None:
    _add_unpaid(h, 9109)  # on hold: no delivery reached woobird
    report = await reconcile(h.services)
    assert 9109 in report.queued_ids
    await h.run_worker()
    record = await h.record(9109)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT
    h.shop.update_order(9109, status="cancelled")  # and this delivery is lost too
    await reconcile(h.services)
    await h.run_worker()
    record = await h.record(9109)
    assert record is not None
    assert record.state == OrderState.CREDITED


async def test_an_unpaid_order_placed_before_sync_since_gets_no_open_invoice(
    database_url: str, redis: ArqRedis
) -> None:
    since = {**SETTINGS, "sync_since": datetime(2026, 4, 1, tzinfo=UTC)}
    async with open_harness(database_url=database_url, redis=redis, **since) as h:
        _add_unpaid(h, 9110)
        answer = (await h.deliver(9110)).json()
        assert answer["outcome"] == "ignored"
        assert "before SYNC_SINCE" in answer["reason"]
        assert h.moneybird.sales_invoices == {}


@pytest.mark.parametrize("method", ["create_sales_invoice", "send_sales_invoice"])
async def test_an_answer_lost_or_a_worker_killed_after_each_write_of_the_open_booking_makes_one_open_invoice(
    h: Harness, method: str
) -> None:
    _add_unpaid(h, 9131)
    seen = _after(h, h.services.moneybird, method, MoneybirdTimeout("no answer"))
    await h.deliver(9131)
    await h.run_worker()
    assert seen[0] == 1  # the next try found what the lost answer had made, and did not make it again
    _add_unpaid(h, 9132)
    _after(h, h.services.moneybird, method, WorkerKilled())
    with pytest.raises(WorkerKilled):
        await book_order(h.services, order_id=9132, reason="webhook")
    await h.redis.delete(f"{ORDER_LOCK_PREFIX}9132")
    assert await book_order(h.services, order_id=9132, reason="resumed") == OrderState.AWAITING_PAYMENT
    for order_id in (9131, 9132):
        (invoice,) = h.invoices_for(str(order_id))
        assert invoice["state"] in ("open", "late")
        assert invoice["payments"] == []
        record = await h.record(order_id)
        assert record is not None
        assert (record.state, record.invoice_id) == (OrderState.AWAITING_PAYMENT, invoice["id"])


async def test_the_dashboard_and_its_order_page_say_the_open_invoice_awaits_payment(h: Harness) -> None:
    invoice = await _open(h, 9133)
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    overview = await h.web.get("/admin", headers=auth)
    assert overview.status_code == 200
    assert 'data-count="awaiting_payment"><div class="label">awaiting payment</div><div class="value">1<' in (
        overview.text
    )
    page = await h.web.get("/admin/orders/9133", headers=auth)
    assert "awaiting payment" in page.text
    assert invoice["invoice_id"] in page.text


async def test_open_invoices_are_off_by_default_and_other_payment_methods_book_paid_as_before(
    database_url: str, redis: ArqRedis
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since=SETTINGS["sync_since"]) as off:
        _add_unpaid(off, 9102)
        response = await off.deliver(9102)
        assert response.status_code == 200
        assert response.json()["outcome"] == "ignored"
        assert off.moneybird.sales_invoices == {}
    async with open_harness(database_url=database_url, redis=redis, **SETTINGS) as on:
        _add_unpaid(on, 9103, method="mollie_wc_gateway_ideal")  # unpaid, but not a method named
        assert (await on.deliver(9103)).json()["outcome"] == "ignored"
        on.add_paid_order(
            order_id=9104,
            customer=CUSTOMER,
            items=[LAMP],
            created_at=ORDERED_AT,
            paid_at=ORDERED_AT,
            completed_at=ORDERED_AT,
            payment_method="bacs",
        )
        await on.deliver(9104)
        await on.run_worker()
        (paid,) = on.invoices_for("9104")
        assert paid["state"] == "paid"
        assert _payments(paid) == [Decimal(paid["total_price_incl_tax"])]
        record = await on.record(9104)
        assert record is not None
        assert record.state == OrderState.BOOKED


async def test_email_delivery_sends_the_open_invoice_unless_the_order_has_no_address(
    database_url: str, redis: ArqRedis
) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, open_invoice_delivery="Email", **SETTINGS
    ) as h:
        invoice = await _open(h, 9105)
        (sent,) = [e for e in invoice["events"] if e["action"] == "sales_invoice_send_email"]
        assert sent["data"]["email_address"] == "femke@example.nl"
        # Moneybird refuses Email without an address: such an order's invoice is sent Manual.
        nameless = Customer(
            first_name="Piet", last_name="Jansen", email="", city="Delft", company="Jansen BV"
        )
        manual = await _open(h, 9106, customer=nameless)
        actions = [e["action"] for e in manual["events"]]
        assert "sales_invoice_send_manually" in actions
        assert "sales_invoice_send_email" not in actions


# ── paid in Moneybird first ──────────────────────────────────────────────────────────────────


async def test_a_payment_in_moneybird_marks_the_order_paid_once_and_its_delivery_books_nothing(
    h: Harness,
) -> None:
    invoice = await _open(h, 9111)
    total = Decimal(invoice["total_price_incl_tax"])
    h.moneybird.register_payment_from_bank(invoice["id"], total, date(2026, 3, 5))
    await _settle(h, invoice["id"], times=3)  # Moneybird tells more than once (retries, the poll)

    order = h.shop.orders[9111]
    assert order["status"] == "processing"
    assert order["date_paid_gmt"]
    assert _puts(h) == 1
    record = await h.record(9111)
    assert record is not None
    assert (record.state, record.step) == (OrderState.BOOKED, OrderStep.PAID)
    assert record.payment_id == invoice["payments"][0]["id"]
    assert len(await _events(h, 9111, "settled")) == 1
    notes = [n["note"] for n in h.shop.notes[9111]]
    assert len(notes) == 2
    assert "was paid in Moneybird" in notes[-1]

    # The PUT saved the order, so WooCommerce delivers it: that books, pays and alerts nothing.
    writes = h.moneybird.calls("POST *") + h.moneybird.calls("PATCH *")
    assert await _deliver_saves_and_run(h) == [9111]
    assert h.moneybird.calls("POST *") + h.moneybird.calls("PATCH *") == writes
    assert h.invoices_for("9111") == [invoice]
    assert _payments(invoice) == [total]
    assert await _findings(h, FindingKind.ORDER_CHANGED) == []
    record = await h.record(9111)
    assert record is not None
    assert record.state == OrderState.BOOKED
    assert len(h.shop.notes[9111]) == 2
    assert _puts(h) == 1


async def test_an_invoice_woobird_did_not_book_or_has_settled_is_left_alone(h: Harness) -> None:
    assert await h.services.redis.enqueue_job("settle_invoice", "999999999999999999", "webhook")
    await h.run_worker()
    invoice = await _open(h, 9112)
    await _settle(h, invoice["id"])  # not paid yet: nothing happens
    assert h.shop.orders[9112]["status"] == "on-hold"
    assert _puts(h) == 0
    record = await h.record(9112)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT
    outcome = await settle_invoice(h.services, order_id=9112, invoice_id="123", reason="poll")
    assert "does not await payment" in outcome


async def test_an_answer_lost_after_marking_the_order_paid_is_not_written_twice(h: Harness) -> None:
    invoice = await _open(h, 9113)
    h.moneybird.register_payment_from_bank(invoice["id"], invoice["total_price_incl_tax"])
    seen = _after(
        h, h.services.shop, "mark_order_paid", WooCommerceTransient("no answer", method="PUT", path="/")
    )
    await _settle(h, invoice["id"])
    assert seen[0] == 1  # the retry read the order paid and did not write it again
    assert _puts(h) == 1
    record = await h.record(9113)
    assert record is not None
    assert record.state == OrderState.BOOKED
    assert len(await _events(h, 9113, "settled")) == 1


async def test_a_worker_killed_after_marking_the_order_paid_resumes_without_a_second_write(
    h: Harness,
) -> None:
    invoice = await _open(h, 9114)
    h.moneybird.register_payment_from_bank(invoice["id"], invoice["total_price_incl_tax"])
    _after(h, h.services.shop, "mark_order_paid", WorkerKilled())
    with pytest.raises(WorkerKilled):
        await settle_invoice(h.services, order_id=9114, invoice_id=invoice["id"], reason="webhook")
    record = await h.record(9114)
    assert record is not None
    assert (record.state, record.step) == (
        OrderState.AWAITING_PAYMENT,
        OrderStep.MARKING_PAID,
    )  # intent first
    await h.redis.delete(f"{ORDER_LOCK_PREFIX}9114")
    await _settle(h, invoice["id"])
    assert _puts(h) == 1
    record = await h.record(9114)
    assert record is not None
    assert record.state == OrderState.BOOKED


async def test_a_partial_payment_is_reported_and_never_forced_onto_the_order(h: Harness) -> None:
    invoice = await _open(h, 9115)
    total = Decimal(invoice["total_price_incl_tax"])
    h.moneybird.register_payment_from_bank(invoice["id"], Decimal("20.00"))
    await _settle(h, invoice["id"], times=2)
    (finding,) = await _findings(h, FindingKind.PAYMENT_MISMATCH)
    assert finding.state == FindingState.OPEN
    assert finding.order_id == 9115
    assert "20.00 of" in finding.message
    assert h.shop.orders[9115]["status"] == "on-hold"
    assert _puts(h) == 0
    record = await h.record(9115)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT
    # The rest arrives: now it is paid in full, and the order is marked paid.
    h.moneybird.register_payment_from_bank(invoice["id"], total - Decimal("20.00"))
    await _settle(h, invoice["id"])
    assert h.shop.orders[9115]["status"] == "processing"
    assert _puts(h) == 1


async def test_a_shop_that_refuses_the_status_keeps_the_order_awaiting(
    database_url: str, redis: ArqRedis
) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, paid_order_status="wc-shipped", **SETTINGS
    ) as h:
        invoice = await _open(h, 9116)
        h.moneybird.register_payment_from_bank(invoice["id"], invoice["total_price_incl_tax"])
        await _settle(h, invoice["id"])
        assert [call.status for call in h.shop.calls("PUT /orders/{id}")] == [400]
        record = await h.record(9116)
        assert record is not None
        assert record.state == OrderState.AWAITING_PAYMENT
        (failed,) = await _events(h, 9116, "settle_failed")
        assert "PAID_ORDER_STATUS" in failed


# ── paid in the shop first ───────────────────────────────────────────────────────────────────


async def test_an_order_paid_in_the_shop_gets_one_payment_in_moneybird(h: Harness) -> None:
    invoice = await _open(h, 9121)
    total = Decimal(invoice["total_price_incl_tax"])
    h.shop.update_order(9121, status="processing")  # the owner saw the transfer and marked it
    for _ in range(2):
        await h.deliver(9121)
        await h.run_worker()
    assert invoice["state"] == "paid"
    assert _payments(invoice) == [total]
    record = await h.record(9121)
    assert record is not None
    assert record.state == OrderState.BOOKED
    assert record.payment_id == invoice["payments"][0]["id"]
    # Moneybird tells of the payment woobird made: nothing more happens.
    await _settle(h, invoice["id"])
    assert _puts(h) == 0
    assert _payments(invoice) == [total]


async def test_paid_on_both_sides_at_once_ends_in_one_payment(h: Harness) -> None:
    invoice = await _open(h, 9122)
    total = Decimal(invoice["total_price_incl_tax"])
    h.shop.update_order(9122, status="processing")
    pay = h.services.moneybird.create_sales_invoice_payment

    async def bank_first(invoice_id: str, payment: Any) -> Any:
        # The bank's transfer is matched just after woobird read the invoice as open.
        h.moneybird.register_payment_from_bank(invoice_id, total)
        return await pay(invoice_id, payment)

    h.services.moneybird.create_sales_invoice_payment = bank_first  # type: ignore[method-assign]
    await h.deliver(9122)
    await h.run_worker()
    assert _payments(invoice) == [total]
    record = await h.record(9122)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    assert record.payment_id == invoice["payments"][0]["id"]  # the bank's
    await _settle(h, invoice["id"])
    assert _puts(h) == 0


async def test_an_answer_lost_after_paying_in_moneybird_is_adopted(h: Harness) -> None:
    invoice = await _open(h, 9123)
    h.shop.update_order(9123, status="processing")
    seen = _after(h, h.services.moneybird, "create_sales_invoice_payment", MoneybirdTimeout("no answer"))
    await h.deliver(9123)
    await h.run_worker()
    assert seen[0] == 1
    assert _payments(invoice) == [Decimal(invoice["total_price_incl_tax"])]
    record = await h.record(9123)
    assert record is not None
    assert record.state == OrderState.BOOKED
    assert record.payment_id == invoice["payments"][0]["id"]


async def test_a_worker_killed_after_paying_in_moneybird_resumes_without_a_second(h: Harness) -> None:
    invoice = await _open(h, 9124)
    h.shop.update_order(9124, status="processing")
    _after(h, h.services.moneybird, "create_sales_invoice_payment", WorkerKilled())
    with pytest.raises(WorkerKilled):
        await book_order(h.services, order_id=9124, reason="webhook")
    await h.redis.delete(f"{ORDER_LOCK_PREFIX}9124")
    assert await book_order(h.services, order_id=9124, reason="resumed") == OrderState.BOOKED
    assert _payments(invoice) == [Decimal(invoice["total_price_incl_tax"])]


async def test_paid_in_the_shop_after_a_partial_bank_payment_is_reported_not_guessed(h: Harness) -> None:
    invoice = await _open(h, 9125)
    h.moneybird.register_payment_from_bank(invoice["id"], Decimal("10.00"))
    h.shop.update_order(9125, status="processing")
    await h.deliver(9125)
    await h.run_worker()
    assert _payments(invoice) == [Decimal("10.00")]
    assert len(await _findings(h, FindingKind.PAYMENT_MISMATCH)) == 1
    record = await h.record(9125)
    assert record is not None
    assert record.state == OrderState.AWAITING_PAYMENT


# ── ended unpaid ─────────────────────────────────────────────────────────────────────────────


async def _assert_credited_once(h: Harness, order_id: int, invoice: dict[str, Any]) -> None:
    total = Decimal(invoice["total_price_incl_tax"])
    credits = [
        i for i in h.moneybird.sales_invoices.values() if i["original_sales_invoice_id"] == invoice["id"]
    ]
    (credit,) = credits
    assert Decimal(credit["total_price_incl_tax"]) == -total
    assert credit["state"] == "paid"
    assert _payments(credit) == [-total]
    assert invoice["state"] == "paid"
    assert _payments(invoice) == [total]
    assert invoice["payments"][0]["credit_invoice_id"] == credit["id"]
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.CREDITED
    (finding,) = await _findings(h, FindingKind.OPEN_INVOICE_CREDITED)
    assert finding.order_id == order_id
    assert credit["invoice_id"] in finding.message
    notes = [n["note"] for n in h.shop.notes[order_id]]
    assert any(f"credit invoice {credit['invoice_id']}" in n for n in notes), notes


async def test_an_open_invoice_of_a_cancelled_order_is_credited_in_full_and_reported(h: Harness) -> None:
    invoice = await _open(h, 9131)
    h.shop.update_order(9131, status="cancelled")
    # Accepted for its open invoice, though not a status woobird books; a second delivery changes nothing.
    assert (await h.deliver(9131)).status_code == 202
    await h.run_worker()
    h.shop.update_order(9131, customer_note="Geannuleerd")
    await h.deliver(9131)
    await h.run_worker()
    await _assert_credited_once(h, 9131, invoice)
    await _settle(h, invoice["id"])  # the settlement is no payment: the order stays cancelled
    assert h.shop.orders[9131]["status"] == "cancelled"
    assert _puts(h) == 0


@pytest.mark.parametrize(
    "method", ["duplicate_credit_invoice", "send_sales_invoice", "register_payment_creditinvoice"]
)
async def test_an_answer_lost_after_each_write_of_the_credit_is_adopted(h: Harness, method: str) -> None:
    invoice = await _open(h, 9132)
    h.shop.update_order(9132, status="cancelled")
    seen = _after(h, h.services.moneybird, method, MoneybirdTimeout("no answer"))
    await h.deliver(9132)
    await h.run_worker()
    assert seen[0] >= 1
    await _assert_credited_once(h, 9132, invoice)


@pytest.mark.parametrize(
    "method", ["duplicate_credit_invoice", "send_sales_invoice", "register_payment_creditinvoice"]
)
async def test_a_worker_killed_after_each_write_of_the_credit_resumes_without_a_second(
    h: Harness, method: str
) -> None:
    invoice = await _open(h, 9133)
    h.shop.update_order(9133, status="cancelled")
    _after(h, h.services.moneybird, method, WorkerKilled())
    with pytest.raises(WorkerKilled):
        await book_order(h.services, order_id=9133, reason="webhook")
    await h.redis.delete(f"{ORDER_LOCK_PREFIX}9133")
    assert await book_order(h.services, order_id=9133, reason="resumed") == OrderState.CREDITED
    await h.run_worker()  # the note it queued
    await _assert_credited_once(h, 9133, invoice)


async def test_a_cancelled_order_whose_invoice_has_a_payment_is_reported_not_credited(h: Harness) -> None:
    invoice = await _open(h, 9134)
    h.moneybird.register_payment_from_bank(invoice["id"], Decimal("5.00"))
    h.shop.update_order(9134, status="cancelled")
    await h.deliver(9134)
    await h.run_worker()
    assert [i for i in h.moneybird.sales_invoices.values() if i["original_sales_invoice_id"]] == []
    (finding,) = await _findings(h, FindingKind.PAYMENT_MISMATCH)
    assert "cancelled" in finding.message


# ── settings and the fake shop's PUT ─────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"open_invoice_payment_methods": "bacs;cod"}, "OPEN_INVOICE_PAYMENT_METHODS"),
        (
            {"open_invoice_payment_methods": "bacs", "invoice_kind": "external_sales_invoice"},
            "OPEN_INVOICE_PAYMENT_METHODS",
        ),
        ({"open_invoice_statuses": "on-hold,cancelled"}, "OPEN_INVOICE_STATUSES"),
        ({"paid_order_status": "on-hold"}, "PAID_ORDER_STATUS"),
        ({"open_invoice_delivery": "Post"}, "OPEN_INVOICE_DELIVERY"),
    ],
)
def test_bad_open_invoice_settings_refuse_to_start_naming_the_setting(
    settings: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**settings)
    assert named in str(refused.value)


def test_the_open_invoice_settings_are_read_from_comma_lists() -> None:
    settings = load_settings(open_invoice_payment_methods=" bacs, cod ", open_invoice_statuses="wc-on-hold")
    assert (settings.open_invoice_payment_methods, settings.open_invoice_statuses) == (
        ["bacs", "cod"],
        ["on-hold"],
    )
    assert (settings.paid_order_status, settings.open_invoice_delivery) == ("processing", "Manual")


async def test_the_fake_shop_saves_a_status_as_woocommerce_and_refuses_an_unknown_one(h: Harness) -> None:
    _add_unpaid(h, 9141)
    modified = h.shop.orders[9141]["date_modified_gmt"]
    shop = h.services.shop
    with pytest.raises(WooCommerceRejected) as refused:
        await shop.mark_order_paid(9141, status="shipped")
    assert refused.value.status == 400
    assert "status" in str(refused.value)
    assert h.shop.saved_orders == []
    assert h.shop.orders[9141]["status"] == "on-hold"
    order = await shop.mark_order_paid(9141, status="processing")
    assert order.status == "processing"
    assert order.date_paid_gmt is not None
    assert h.shop.orders[9141]["date_modified_gmt"] > modified
    assert h.shop.saved_orders == [9141]  # WooCommerce delivers the save as order.updated
