"""The checkout simulator reproduces WooCommerce's arithmetic, checked against hand-worked carts."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.sandbox.woocommerce.cart import NL_REDUCED, NL_STANDARD, CartItem, Customer, Fee, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order, random_order
from tests.invoicing.reference_carts import CARTS, order_document

NOW = datetime(2025, 6, 1, 10, tzinfo=UTC)
CONSUMER = Customer(first_name="Jan", last_name="Smit", email="jan@example.com")


def _line(doc: dict[str, Any], index: int = 0) -> dict[str, Any]:
    line: dict[str, Any] = doc["line_items"][index]
    return line


def _money(doc: dict[str, Any]) -> tuple[str, ...]:
    keys = (
        "discount_total",
        "discount_tax",
        "shipping_total",
        "shipping_tax",
        "cart_tax",
        "total_tax",
        "total",
    )
    return tuple(doc[key] for key in keys)


def test_a_prices_excluding_vat_round_tax_per_line() -> None:
    doc = order_document("a")
    # 2480 × 21 % = 520.8 → 521; shipping 495 × 21 % = 103.95 → 104.
    assert _money(doc) == ("0.00", "0.00", "4.95", "1.04", "5.21", "6.25", "36.00")
    assert _line(doc)["taxes"] == [{"id": 1, "total": "5.208", "subtotal": "5.208"}]
    assert _line(doc)["price"] == 12.4
    assert doc["shipping_lines"][0]["taxes"] == [{"id": 1, "total": "1.0395", "subtotal": ""}]
    assert doc["tax_lines"][0]["rate_code"] == "NL-BTW-1"
    assert doc["tax_lines"][0]["rate_percent"] == 21


def test_b_prices_including_vat_carve_the_tax_out() -> None:
    doc = order_document("b")
    # 2995 gross: tax 519.793388 → 520, net 2475.206612; 1947 gross at 9 %: 160.761468 → 161.
    assert _money(doc) == ("0.00", "0.00", "4.95", "1.04", "6.81", "7.85", "55.41")
    teapot, tea = doc["line_items"]
    assert (teapot["subtotal"], teapot["subtotal_tax"], teapot["price"]) == ("24.75", "5.20", 24.752066)
    assert teapot["taxes"][0]["total"] == "5.197934"
    assert (tea["total"], tea["total_tax"], tea["taxes"][0]["total"]) == ("17.86", "1.61", "1.607615")
    assert tea["price"] == 5.954128333333333
    assert [t["rate_code"] for t in doc["tax_lines"]] == ["NL-BTW-1", "NL-BTW VERLAAGD-1"]


def test_c_percent_then_fixed_cart_coupons_with_cent_remainders() -> None:
    doc = order_document("c")
    assert _money(doc) == ("15.80", "2.33", "4.95", "1.04", "14.47", "15.51", "112.66")
    plaid, book = doc["line_items"]
    # 10 %: 590 + 490; fixed cart: 166 per unit, 2 cents left, highest unit price first.
    assert (plaid["total"], plaid["taxes"][0]["total"]) == ("51.43", "10.8003")
    assert (book["total"], book["taxes"][0]["total"], book["price"]) == ("40.77", "3.6693", 20.385)
    coupons = [(c["code"], c["discount"], c["discount_tax"]) for c in doc["coupon_lines"]]
    assert coupons == [("welkom10", "10.8", "1.68"), ("korting5", "5", "0.65")]


def test_d_vat_exempt_customer_pays_no_tax_at_all() -> None:
    doc = order_document("d")
    assert _money(doc) == ("0.00", "0.00", "12.50", "0.00", "0.00", "0.00", "661.50")
    assert doc["tax_lines"] == []
    assert _line(doc)["taxes"] == []
    assert _line(doc)["price"] == 649
    meta = {m["key"]: m["value"] for m in doc["meta_data"]}
    assert meta["is_vat_exempt"] == "yes"
    assert meta["_billing_vat_number"] == "BE0765342173"


def test_e_fee_tax_enters_the_tax_line_unrounded() -> None:
    doc = order_document("e")
    assert _money(doc) == ("0.00", "0.00", "4.95", "1.04", "4.60", "5.64", "32.49")
    fee = doc["fee_lines"][0]
    assert (fee["total"], fee["total_tax"], fee["taxes"][0]["total"]) == ("2.95", "0.62", "0.6195")
    free = doc["line_items"][1]
    assert free["taxes"] == [{"id": 1, "total": "0", "subtotal": "0"}]
    assert free["price"] == 0
    assert doc["tax_lines"][0]["tax_total"] == "4.60"


def test_f_refund_leaves_the_order_amounts_alone() -> None:
    doc = order_document("f")
    assert _money(doc) == ("0.00", "0.00", "4.95", "1.04", "12.98", "14.02", "80.77")
    assert doc["refunds"] == [{"id": 1612, "reason": "Retour: schort in verkeerde maat", "total": "-42.29"}]
    assert _line(doc)["price"] == 8.950000000000001  # PHP float division, as WooCommerce shows it


@pytest.mark.parametrize("name", sorted(CARTS))
def test_identities_of_the_reference_notes_hold(name: str) -> None:
    doc = order_document(name)
    d = Decimal
    lines, fees, ships = doc["line_items"], doc["fee_lines"], doc["shipping_lines"]
    total = sum(d(li["total"]) for li in lines) + sum(d(f["total"]) for f in fees) + d(doc["shipping_total"])
    assert total + d(doc["total_tax"]) == d(doc["total"])
    cart_tax = sum(d(li["total_tax"]) for li in lines) + sum(d(f["total_tax"]) for f in fees)
    assert cart_tax == d(doc["cart_tax"]) == sum(d(t["tax_total"]) for t in doc["tax_lines"])
    assert sum(d(s["total_tax"]) for s in ships) == d(doc["shipping_tax"])
    discount = sum(d(li["subtotal"]) - d(li["total"]) for li in lines)
    assert discount == d(doc["discount_total"])


def test_the_document_is_json_in_the_rest_shape() -> None:
    doc = json.loads(json.dumps(order_document("b")))
    assert doc["date_paid"] == "2025-04-14T20:42:03"  # Amsterdam summer time
    assert doc["date_paid_gmt"] == "2025-04-14T18:42:03"
    assert doc["number"] == "1187"
    assert doc["created_via"] == "checkout"
    assert isinstance(doc["total"], str)
    assert isinstance(_line(doc)["price"], float)


def test_negative_fee_is_capped_and_taxed_per_class() -> None:
    doc = build_order(
        order_id=9001,
        customer=CONSUMER,
        items=[
            CartItem("Boek", Decimal("10.00"), tax_class="reduced-rate"),
            CartItem("Mok", Decimal("10.00")),
        ],
        fees=[Fee("Kassakorting", Decimal("-5.00")), Fee("Alles gratis", Decimal("-100.00"))],
        created_at=NOW,
        paid_at=NOW,
    )
    first, second = doc["fee_lines"]
    # Half of the costs are 9 %, half 21 %: −250 × 9 % = −22.5, −250 × 21 % = −52.5 (cents).
    assert {t["id"]: t["total"] for t in first["taxes"]} == {2: "-0.225", 1: "-0.525"}
    assert first["total_tax"] == "-0.76"
    # The second fee may only take what is left: 20.00 − 5.00.
    assert second["total"] == "-15.00"


def test_vat_exempt_customer_in_a_shop_with_prices_including_vat_pays_the_net_price() -> None:
    customer = Customer(first_name="A", last_name="B", email="b2b@example.be", country="BE", vat_exempt=True)
    lamp = CartItem("Lamp", Decimal("121.00"))
    doc = build_order(
        order_id=9002, customer=customer, items=[lamp], prices_include_tax=True, created_at=NOW, paid_at=NOW
    )
    assert (doc["total"], doc["total_tax"], doc["tax_lines"]) == ("100.00", "0.00", [])


def test_coupon_order_option_follows_woocommerce_sort_by_line_price_times_quantity() -> None:
    cart = dict(CARTS["c"], coupon_sort="line_price_times_quantity")
    plaid, book = build_order(**cart)["line_items"]
    # The cookbook line (49.00 × 2) sorts first, so it gets both remainder cents.
    assert (plaid["total"], book["total"]) == ("51.44", "40.76")


def test_shipping_of_a_reduced_rate_only_cart_falls_back_to_the_standard_rate() -> None:
    doc = build_order(
        order_id=9003,
        customer=CONSUMER,
        items=[CartItem("Thee", Decimal("5.00"), tax_class="reduced-rate")],
        shipping=[ShippingMethod("PostNL", Decimal("4.95"))],
        tax_rates=(NL_STANDARD, NL_REDUCED),
        created_at=NOW,
        paid_at=NOW,
    )
    assert doc["shipping_lines"][0]["taxes"][0]["id"] == NL_STANDARD.id


def test_random_orders_are_deterministic_for_a_seed() -> None:
    first = [random_order(random.Random(3), order_id=10 + n, created_at=NOW) for n in range(3)]
    again = [random_order(random.Random(3), order_id=10 + n, created_at=NOW) for n in range(3)]
    assert first == again
