"""Orders placed in the real shop, booked by the real web and worker processes, each invoice checked
against WooCommerce's own numbers (order total; VAT per rate from `tax_lines`)."""

from __future__ import annotations

import pytest

from tests.realshop.checks import check_booked, invoice_rate_names
from tests.realshop.orders import get_order, place_order, set_status, store_checkout
from tests.realshop.stack import Stack

pytestmark = pytest.mark.realshop


def book(stack: Stack, *, kind: str, include_tax: bool, **order: object) -> dict[str, object]:
    """Place an order in the shop (bank transfer, pending), complete it as the owner does, and check
    the invoice woobird books against the shop's numbers."""
    stack.shop.set_prices_include_tax(include_tax)
    placed = place_order(stack.shop, **order)  # type: ignore[arg-type]
    completed = set_status(stack.shop, placed, "completed")
    return check_booked(stack, completed, kind=kind)


def test_prices_excl_vat_one_rate_and_flat_shipping(stack: Stack) -> None:
    book(
        stack,
        kind="excl. VAT: 3 × 12.40 at 21 %, flat shipping",
        include_tax=False,
        items=[("mug", 3)],
        email="sanne.devries@example.com",
        shipping="flat_nl",
    )


def test_prices_incl_vat_two_rates_in_one_order(stack: Stack) -> None:
    book(
        stack,
        kind="incl. VAT: 21 % and 9 %, flat shipping",
        include_tax=True,
        items=[("teapot", 1), ("tea", 3)],
        email="daan.bakker@example.com",
        shipping="flat_nl",
    )


@pytest.mark.parametrize("include_tax", [True, False], ids=["incl", "excl"])
def test_awkward_quantities_and_prices(stack: Stack, include_tax: bool) -> None:
    book(
        stack,
        kind=f"{'incl' if include_tax else 'excl'}. VAT: 7 × 3.33, 13 × 0.99, 3 × 12.40, free sticker",
        include_tax=include_tax,
        items=[("candle", 7), ("liquorice", 13), ("mug", 3), ("sticker", 1)],
        email="lotte.smit@example.com",
        shipping="flat_nl",
    )


@pytest.mark.parametrize("include_tax", [True, False], ids=["incl", "excl"])
def test_percent_and_fixed_cart_coupons_over_mixed_rates(stack: Stack, include_tax: bool) -> None:
    book(
        stack,
        kind=f"{'incl' if include_tax else 'excl'}. VAT: 10 % + €5 coupons over 21 % and 9 %",
        include_tax=include_tax,
        items=[("plaid", 1), ("cookbook", 2), ("liquorice", 3)],
        coupons=["welkom10", "korting5"],
        email="emma.visser@example.com",
        shipping="flat_nl",
    )


def test_a_fee_and_a_negative_fee_spread_over_21_and_9_percent(stack: Stack) -> None:
    """WooCommerce ≥ 10.0 rounds the negative fee's per-rate taxes to cents in REST bodies."""
    book(
        stack,
        kind="excl. VAT: COD fee + negative fee over 21 % and 9 %",
        include_tax=False,
        # -4.69 over 37.20 at 21 % and 19.47 at 9 %: raw taxes -0.6465 and -0.1450, -0.65 / -0.15 on 10.0.
        items=[("mug", 3), ("tea", 3)],
        fees=[("Rembourskosten", "2.50", ""), ("Korting", "-4.69", "")],
        payment="cod",
        email="bram.mulder@example.com",
        shipping="flat_nl",
    )


def test_free_shipping_over_the_threshold(stack: Stack) -> None:
    book(
        stack,
        kind="incl. VAT: free shipping, variations with and without SKU",
        include_tax=True,
        items=[("shirt", 2, "S"), ("shirt", 1, "M"), ("shirt", 1, "L")],
        email="julia.dekker@example.com",
        shipping="free_nl",
    )


def test_an_oss_consumer_in_germany_pays_german_vat(stack: Stack) -> None:
    invoice = book(
        stack,
        kind="incl. VAT: OSS consumer in DE (19 %)",
        include_tax=True,
        items=[("teapot", 1)],
        country="DE",
        email="lena.schmidt@example.de",
        shipping="flat_eu",
    )
    assert invoice_rate_names(stack, invoice) == {"19% DE (OSS)"}


def test_an_export_outside_the_eu_carries_no_vat(stack: Stack) -> None:
    invoice = book(
        stack,
        kind="export to the US (no VAT)",
        include_tax=False,
        items=[("plaid", 1)],
        country="US",
        email="john.miller@example.com",
        shipping="flat_world",
    )
    assert invoice_rate_names(stack, invoice) == {"0% btw buiten EU"}


def test_a_reverse_charge_business_order(stack: Stack) -> None:
    invoice = book(
        stack,
        kind="reverse charge: BE business, is_vat_exempt",
        include_tax=False,
        items=[("plaid", 2)],
        country="BE",
        company="Brouwerij De Klok BV",
        meta={"is_vat_exempt": "yes", "_billing_vat_number": "BE0123456749"},
        email="inkoop.declok@example.be",
        shipping="flat_eu",
    )
    assert invoice_rate_names(stack, invoice) == {"Btw verlegd"}
    assert get_order(stack.shop, int(str(invoice["reference"]).rsplit("#", 1)[1]))["total_tax"] == "0.00"


def test_a_gift_voucher_at_0_percent_next_to_taxed_products(stack: Stack) -> None:
    book(
        stack,
        kind="excl. VAT: a 0 % voucher next to 21 %",
        include_tax=False,
        items=[("voucher", 1), ("mug", 1)],
        email="noor.jansen@example.com",
        shipping="flat_nl",
    )


def test_the_store_api_checkout(stack: Stack) -> None:
    """A guest checks out through the shop's own Store API (cash on delivery: processing, unpaid),
    then the owner completes the order, which marks it paid."""
    stack.shop.set_prices_include_tax(True)
    order = store_checkout(
        stack.shop,
        items=[("shirt", 2, "M"), ("tea", 3)],
        coupons=["welkom10"],
        email="jan.jansen@example.com",
    )
    assert (order["status"], order["created_via"], order["date_paid_gmt"]) == (
        "processing",
        "store-api",
        None,
    )
    completed = set_status(stack.shop, order, "completed")
    assert completed["date_paid_gmt"] is not None
    check_booked(stack, completed, kind="Store API checkout: variation without SKU, coupon, COD")


def test_orders_that_are_not_completed_are_never_booked(stack: Stack) -> None:
    stack.shop.set_prices_include_tax(True)
    waiting = {
        status: place_order(stack.shop, items=[("mug", 1)], email=f"{status}@example.com", status=status)
        for status in ("pending", "on-hold", "processing", "cancelled")
    }
    # Each is changed once more, so the shop delivers an order.updated for every one of them…
    for order in waiting.values():
        stack.shop.rest.put(f"/wc/v3/orders/{order['id']}", json={"customer_note": "bel even aan"})
    # …and an order completed after them is booked once the shop has delivered them all, in order.
    book(
        stack,
        kind="incl. VAT: 9 %, no shipping",
        include_tax=True,
        items=[("tea", 1)],
        email="na@example.com",
    )
    for status, order in waiting.items():
        assert stack.invoices(f"WooCommerce #{order['number']}") == [], f"a {status} order was booked"
        record = stack.ledger(order["id"])
        assert record is None or record["state"] != "booked", record
