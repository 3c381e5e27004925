"""Invoice lines as the customer reads them: discount and surcharge lines, the note on a split line,
a variation's attributes, a linked Moneybird product on every kind of product line, an untaxed
line's rate, and the refusal for a tax the order does not list."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from app.invoicing.plan import InvoicePlan, PlanOptions, PlanRefused, plan_invoice
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from app.sandbox.woocommerce.cart import CartItem, Coupon
from app.sandbox.woocommerce.checkout import build_order
from app.woocommerce.models import Order
from tests.invoicing.reference_carts import CARTS, order_document

D = Decimal
REFERENCE = sandbox_reference()


def _document(items: list[CartItem], **cart: Any) -> dict[str, Any]:
    return build_order(**(CARTS["a"] | {"items": items, "shipping": []} | cart))


def _plan(document: dict[str, Any], **options: Any) -> InvoicePlan:
    return plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions(**options))


def _descriptions(plan: InvoicePlan, kind: str) -> list[str]:
    return [line.description for line in plan.lines if line.kind == kind]


@pytest.mark.parametrize("off", ["0.50", "5.00"])
def test_a_coupon_at_one_rate_is_one_discount_line_naming_the_code(off: str) -> None:
    plan = _plan(_document([CartItem("Zeep", D("4.99"))], coupons=[Coupon("klein", "fixed_cart", D(off))]))
    assert _descriptions(plan, "discount") == ["Korting klein"]


def test_a_line_that_costs_more_after_coupons_reads_as_a_price_correction() -> None:
    document = _document([CartItem("Zeep", D("4.99"))])
    (soap,) = document["line_items"]
    # Dearer after coupons than before (a plug-in that adds a surcharge to the line itself).
    soap |= {"subtotal": "4.00", "subtotal_tax": "0.84"}
    soap["taxes"][0]["subtotal"] = "0.84"
    # A coupon that gave nothing here: the price correction is not the coupon's, so it is not named.
    document["coupon_lines"] = [{"id": 7, "code": "welkom", "discount": "0", "discount_tax": "0"}]
    plan = _plan(document)
    after, before = D("4.99") + D("1.05"), D("4.00") + D("0.84")
    assert [(line.description, line.total) for line in plan.lines if line.kind == "discount"] == [
        ("Prijscorrectie", after - before)
    ]


def test_a_split_line_says_in_its_note_how_it_was_booked() -> None:
    plan = _plan(order_document("a"))
    mugs = [line for line in plan.lines if line.kind == "product"]
    booked = " + ".join(f"{int(line.quantity)} × {line.price}" for line in mugs)
    assert len(mugs) == 2
    assert any(note.endswith(f"booked as {booked}") for note in plan.notes)


def test_a_variation_names_every_attribute_its_name_lacks() -> None:
    shirt = CartItem(
        "T-shirt",
        D("20.00"),
        variation_id=5,
        sku="TS-RD-XL",
        attributes=(("pa_kleur", "rood"), ("pa_maat", "XL")),
    )
    plan = _plan(_document([shirt]))
    assert _descriptions(plan, "product") == ["T-shirt – rood, XL (TS-RD-XL)"]


@pytest.mark.parametrize("quantity", ["1", "1.5"], ids=["whole cents", "part of a piece"])
def test_a_product_linked_by_sku_carries_its_moneybird_product_on_its_line(quantity: str) -> None:
    document = _document([CartItem("Koffiemok Delfts Blauw", D("12.40"), sku="MOK-DB-01")])
    document["line_items"][0]["quantity"] = quantity
    plan = _plan(document, products={"MOK-DB-01": "900"})
    assert [line.product_id for line in plan.lines if line.kind == "product"] == ["900"]


def test_an_untaxed_line_of_a_euro_in_a_taxed_order_is_booked_at_0_percent() -> None:
    document = _document([CartItem("Zeep", D("4.99")), CartItem("Ansichtkaart", D("1.00"), taxable=False)])
    plan = _plan(document)
    assert [(line.description, line.tax_rate_id) for line in plan.lines if line.kind == "product"] == [
        ("Zeep", sb.SALES_21),
        ("Ansichtkaart", sb.SALES_0),
    ]


def test_a_line_taxed_at_a_rate_the_order_does_not_list_is_refused_with_what_to_do() -> None:
    document = copy.deepcopy(order_document("a"))
    document["line_items"][0]["taxes"][0]["id"] = 99
    with pytest.raises(PlanRefused) as caught:
        _plan(document)
    assert str(caught.value).endswith(
        "product 'Koffiemok Delfts Blauw' is taxed with WooCommerce tax rate 99, which is missing from the "
        "order's tax lines. To fix: check the order's taxes in WooCommerce (recalculate), then book it again."
    )
