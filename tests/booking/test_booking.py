"""Booking end to end: signed webhook → web → Redis → worker → fake Moneybird → paid invoice.

The fakes behave like the real APIs (validation, 422 bodies, 429 with an epoch reset, drafts that
refuse payments, answers lost after the work was done), so each test states an invariant: one
contact per e-mail, one invoice per order, one payment per invoice, total = what was paid.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, Literal

import pytest
from arq.connections import ArqRedis

from app.booking import ledger
from app.schema import OrderState, RefundRecord, RefundState
from tests.harness import Harness, open_harness
from tests.invoicing.reference_carts import CARTS, order_document


def _add(harness: Harness, document: dict[str, Any]) -> int:
    return int(harness.shop.add_order(document)["id"])


def _one_paid_invoice(harness: Harness, number: str, total: str) -> dict[str, Any]:
    invoices = harness.invoices_for(number)
    assert len(invoices) == 1, f"expected one invoice for order {number}, found {len(invoices)}"
    invoice = invoices[0]
    assert invoice["state"] == "paid"
    assert Decimal(invoice["total_price_incl_tax"]) == Decimal(total)
    assert len(invoice["payments"]) == 1
    return invoice


@pytest.mark.parametrize("case", sorted(CARTS))
async def test_reference_orders_become_paid_invoices_for_what_was_paid(harness: Harness, case: str) -> None:
    document = order_document(case)
    order_id = _add(harness, document)
    response = await harness.deliver(order_id)
    assert response.status_code == 202, response.text
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    invoice = _one_paid_invoice(harness, document["number"], document["total"])
    assert record.invoice_number == invoice["invoice_id"]
    assert record.invoice_url == invoice["url"]  # the dashboard links the order to it
    assert record.invoice_total == Decimal(document["total"])
    # The ledger keeps the VAT per rate as the shop charged it next to Moneybird's figure.
    assert {row["tax_rate_id"] for row in record.vat_differences()} == {
        total["tax_rate_id"] for total in invoice["tax_totals"]
    }


async def test_both_vat_roundings_give_the_order_total(harness: Harness) -> None:
    roundings: tuple[tuple[Literal["per_line", "per_rate"], str], ...] = (
        ("per_line", "c"),
        ("per_rate", "b"),
    )
    for rounding, case in roundings:
        harness.moneybird.rounding = rounding
        document = order_document(case)
        order_id = _add(harness, {**document, "id": None, "number": f"{document['number']}-{rounding}"})
        await harness.deliver(order_id)
        await harness.run_worker()
        _one_paid_invoice(harness, f"{document['number']}-{rounding}", document["total"])


async def test_returning_customer_costs_three_calls_and_a_new_one_five(harness: Harness) -> None:
    first, second = order_document("a"), order_document("a")
    second.update(id=None, number="second")
    first_id = _add(harness, first)
    await harness.deliver(first_id)
    await harness.services.reference.get(harness.services.moneybird)  # reference data is cached
    harness.moneybird.reset_requests()
    await harness.run_worker()
    new_customer_calls = harness.moneybird.calls()
    harness.moneybird.reset_requests()
    second_id = _add(harness, second)
    await harness.deliver(second_id)
    await harness.run_worker()
    assert new_customer_calls == 5
    assert harness.moneybird.calls() == 3
    assert len(harness.moneybird.contacts) == 1


async def test_duplicate_jobs_on_several_workers_make_one_invoice(harness: Harness) -> None:
    document = order_document("a")
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    # Three more versions of the same order arrive while nothing has run yet.
    for _ in range(3):
        harness.shop.update_order(order_id, customer_note="gift wrap")
        await harness.deliver(order_id)
    await asyncio.gather(*(harness.run_worker() for _ in range(3)))
    _one_paid_invoice(harness, document["number"], document["total"])
    assert len(harness.moneybird.contacts) == 1


async def test_two_new_orders_of_one_customer_at_once_make_one_contact(harness: Harness) -> None:
    first, second = order_document("c"), order_document("c")
    second.update(id=None, number="c-2")
    ids = [_add(harness, first), _add(harness, second)]
    for order_id in ids:
        await harness.deliver(order_id)
    await asyncio.gather(harness.run_worker(), harness.run_worker())
    assert len(harness.moneybird.contacts) == 1
    for number in (first["number"], "c-2"):
        _one_paid_invoice(harness, number, first["total"])


@pytest.mark.parametrize(
    "route",
    [
        "POST /contacts",
        "POST /sales_invoices",
        "PATCH /sales_invoices/{id}/send_invoice",
        "POST /sales_invoices/{id}/payments",
    ],
)
async def test_an_answer_lost_after_each_step_resumes_without_duplicates(
    harness: Harness, route: str
) -> None:
    document = order_document("b")
    order_id = _add(harness, document)
    harness.moneybird.fail_next(route, kind="lost")
    await harness.deliver(order_id)
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    _one_paid_invoice(harness, document["number"], document["total"])
    assert len(harness.moneybird.contacts) == 1


@pytest.mark.parametrize("kind", ["status", "timeout"])
async def test_server_errors_and_timeouts_are_retried(harness: Harness, kind: str) -> None:
    document = order_document("e")
    order_id = _add(harness, document)
    harness.moneybird.fail_next("POST /sales_invoices", kind=kind, status=503, times=2)  # type: ignore[arg-type]
    await harness.deliver(order_id)
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    assert record.attempts >= 3
    _one_paid_invoice(harness, document["number"], document["total"])


async def test_429_waits_for_the_reset_instead_of_hammering(harness: Harness) -> None:
    await harness.services.reference.get(harness.services.moneybird)
    harness.moneybird.reset_requests()
    harness.moneybird.rate_limit = (2, 2.0)  # Moneybird's own window, tighter than woobird's limiter
    document = order_document("a")
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    started = time.monotonic()
    await harness.run_worker()
    elapsed = time.monotonic() - started
    _one_paid_invoice(harness, document["number"], document["total"])
    # Five calls through a 2-per-2-s window need at least two resets; each 429 is followed by
    # waiting for the absolute Retry-After, so there are at most as many 429s as windows crossed.
    assert elapsed >= 3.0
    assert harness.moneybird.count_429 <= 3


async def test_a_rejected_order_fails_with_moneybirds_words_and_others_go_on(harness: Harness) -> None:
    bad, good = order_document("a"), order_document("e")
    bad_id, good_id = _add(harness, bad), _add(harness, good)
    harness.moneybird.fail_next("POST /sales_invoices", kind="status", status=422)
    await harness.deliver(bad_id)
    await harness.run_worker()
    await harness.deliver(good_id)
    await harness.run_worker()
    failed = await harness.record(bad_id)
    assert failed is not None
    assert failed.state == OrderState.FAILED
    assert failed.failure_kind == "rejected"
    assert failed.error
    assert "Moneybird rejected" in failed.error
    _one_paid_invoice(harness, good["number"], good["total"])


async def test_a_bad_token_is_a_configuration_failure_that_names_it(harness: Harness) -> None:
    harness.moneybird.token = "rotated-token"
    document = order_document("a")
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.FAILED
    assert record.failure_kind == "configuration"
    assert record.error
    assert "token" in record.error.lower()
    assert harness.moneybird.sales_invoices == {}


async def test_a_refused_plan_books_nothing_and_says_why(harness: Harness) -> None:
    document = order_document("d")
    document["billing"]["country"] = "XX"  # no EU business, no export: nothing fits
    document["meta_data"] = []
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.FAILED
    assert record.failure_kind == "refused"
    assert record.error
    assert harness.moneybird.calls("POST /sales_invoices") == 0


async def test_lines_carry_the_moneybird_product_once_products_are_transferred(harness: Harness) -> None:
    import json

    from app.booking import ledger
    from app.booking.products import PRODUCT_CATALOGUE
    from app.db import transaction
    from app.moneybird.models import ProductCreate

    document = order_document("a")
    sku = document["line_items"][0]["sku"]
    assert sku
    product = await harness.services.moneybird.create_product(
        ProductCreate(
            price=Decimal("12.40"),
            ledger_account_id=harness.moneybird.ledger_account_id("Omzet"),
            title="Mok",
            identifier=sku,
        )
    )
    async with transaction(harness.sessions) as session:
        await ledger.set_state(session, PRODUCT_CATALOGUE, json.dumps({sku: product.id}))
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    await harness.run_worker()
    invoice = _one_paid_invoice(harness, document["number"], document["total"])
    # The mug's lines (split in two when its gross per piece is not whole cents) carry the
    # product; shipping, which has no SKU, does not.
    by_description = {detail["description"]: detail.get("product_id") for detail in invoice["details"]}
    mug = [pid for description, pid in by_description.items() if "Verzend" not in description]
    assert mug
    assert set(mug) == {product.id}
    assert [pid for description, pid in by_description.items() if "Verzend" in description] == [None]


async def test_an_order_the_shop_serves_as_nonsense_fails_with_a_reason(harness: Harness) -> None:
    document = order_document("a")
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    harness.shop.orders[order_id]["line_items"][0]["quantity"] = 10**30
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.FAILED
    assert record.failure_kind == "shop"
    assert record.error
    assert "could not be read" in record.error
    assert harness.moneybird.sales_invoices == {}


@pytest.mark.parametrize(
    "lost", [None, "POST /external_sales_invoices", "POST /external_sales_invoices/{id}/payments"]
)
async def test_external_invoices_are_booked_once_under_the_order_number(
    database_url: str, redis: ArqRedis, lost: str | None
) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, invoice_kind="external_sales_invoice"
    ) as harness:
        document = order_document("c")
        order_id = _add(harness, document)
        if lost:
            harness.moneybird.fail_next(lost, kind="lost")
        await harness.deliver(order_id)
        await harness.run_worker()
        record = await harness.record(order_id)
        assert record is not None
        assert record.state == OrderState.BOOKED, record.error
        reference = f"WooCommerce #{document['number']}"
        invoices = [
            i for i in harness.moneybird.external_sales_invoices.values() if i["reference"] == reference
        ]
        assert len(invoices) == 1
        assert invoices[0]["state"] == "paid"
        assert Decimal(invoices[0]["total_price_incl_tax"]) == Decimal(document["total"])
        assert len(invoices[0]["payments"]) == 1
        assert record.invoice_number == reference
        assert harness.moneybird.sales_invoices == {}


async def test_a_token_with_only_the_sales_invoices_scope_books_orders(harness: Harness) -> None:
    # What the README asks for: `settings` is needed only by `woobird products`.
    harness.moneybird.token_scopes = frozenset({"sales_invoices"})
    document = order_document("c")
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    await harness.run_worker()
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    _one_paid_invoice(harness, document["number"], document["total"])
    assert not [r for r in harness.moneybird.requests if r.status == 401]


@pytest.mark.parametrize("kind", ["sales_invoice", "external_sales_invoice"])
async def test_nothing_is_paid_when_moneybirds_total_differs_from_the_order(
    database_url: str, redis: ArqRedis, kind: str
) -> None:
    async with open_harness(database_url=database_url, redis=redis, invoice_kind=kind) as harness:
        document = order_document("b")
        order_id = _add(harness, document)
        harness.moneybird.skew_next_totals("0.01")  # Moneybird's VAT one cent off what the lines give
        await harness.deliver(order_id)
        await harness.run_worker()
        record = await harness.record(order_id)
        assert record is not None
        assert record.state == OrderState.FAILED
        assert record.failure_kind == "mismatch"
        assert record.error
        assert f"where the shop's figure is {document['total']}" in record.error
        assert "nothing was booked as paid" in record.error
        store = (
            harness.moneybird.sales_invoices
            if kind == "sales_invoice"
            else harness.moneybird.external_sales_invoices
        )
        (invoice,) = store.values()
        assert Decimal(invoice["total_price_incl_tax"]) == Decimal(document["total"]) + Decimal("0.01")
        assert invoice["payments"] == []
        assert invoice["state"] == ("draft" if kind == "sales_invoice" else "open")  # never sent
        assert harness.moneybird.calls("POST /sales_invoices/{id}/payments") == 0
        assert harness.moneybird.calls("POST /external_sales_invoices/{id}/payments") == 0


async def test_nothing_is_paid_back_when_the_credit_total_differs_from_the_refund(harness: Harness) -> None:
    document = order_document("b")
    order_id = _add(harness, document)
    await harness.deliver(order_id)
    await harness.run_worker()
    refund = harness.shop.add_refund(order_id, amount="10.00")
    harness.moneybird.skew_next_totals("-0.01")
    await harness.deliver(order_id)
    await harness.run_worker()
    async with harness.sessions() as session:
        record = await session.get(RefundRecord, int(refund["id"]))
    assert record is not None
    assert record.state == RefundState.FAILED
    assert record.error
    assert "nothing was booked as paid" in record.error
    (credit,) = [i for i in harness.moneybird.sales_invoices.values() if " refund " in i["reference"]]
    assert (credit["state"], credit["payments"]) == ("draft", [])
    assert Decimal(credit["total_price_incl_tax"]) == Decimal("-10.01")


async def _events(harness: Harness, order_id: int) -> list[tuple[str | None, str]]:
    async with harness.sessions() as session:
        return [(event.step, event.message) for event in await ledger.events_for(session, order_id)]


async def test_an_order_deleted_in_the_shop_before_its_job_ran_is_skipped_and_says_so(
    harness: Harness,
) -> None:
    order_id = _add(harness, order_document("a"))
    assert (await harness.deliver(order_id)).status_code == 202
    del harness.shop.orders[order_id]  # the owner deleted it (a test order) within the second

    await harness.run_worker()

    record = await harness.record(order_id)
    assert record is not None
    assert (record.state, record.error) == (OrderState.SKIPPED, "the order no longer exists in the shop")
    assert (await _events(harness, order_id))[-1] == ("skipped", "the order no longer exists in the shop")
    assert harness.moneybird.calls("POST *") == 0


async def test_an_order_whose_status_left_the_synced_ones_before_its_job_ran_is_skipped_with_why(
    harness: Harness,
) -> None:
    order_id = _add(harness, order_document("a"))
    assert (await harness.deliver(order_id)).status_code == 202
    harness.shop.update_order(order_id, status="on-hold")  # set back by hand before the job read it

    await harness.run_worker()

    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.SKIPPED
    assert (record.error or "").startswith("status 'on-hold' is not in SYNC_ORDER_STATUSES")
    assert (await _events(harness, order_id))[-1] == ("skipped", record.error)
    assert harness.moneybird.calls("POST *") == 0
