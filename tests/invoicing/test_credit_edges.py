"""Credit invoice plans at their edges: how refunded pieces read, the defaults they are booked
under, a refund naming an order line the order does not have, and amounts spread_cents refuses."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from app.invoicing.plan import PlanOptions
from app.invoicing.reference import TaxRate
from app.invoicing.refund_plan import CreditPlan, CreditRefused, plan_credit, spread_cents
from app.sandbox.administration import SALES_9, SALES_21, sandbox_reference
from app.sandbox.woocommerce.cart import CartItem
from app.sandbox.woocommerce.checkout import build_order
from app.woocommerce.models import Order, Refund
from tests.invoicing.reference_carts import CARTS, order_document

REFERENCE = sandbox_reference()


def _line_id(cart: str, name: str) -> int:
    return next(int(line["id"]) for line in order_document(cart)["line_items"] if line["name"] == name)


def _refund(
    cart: str, name: str, *, pieces: int, total: str, tax: str, item_id: int | None = None
) -> dict[str, Any]:
    gross = Decimal(total) + Decimal(tax)
    return {
        "id": 1700,
        "date_created_gmt": "2025-11-12T13:05:33",
        "amount": str(-gross),
        "line_items": [
            {
                "id": 1701,
                "name": name,
                "quantity": -pieces,
                "total": total,
                "total_tax": tax,
                "taxes": [{"id": 1, "total": tax, "subtotal": tax}],
                "meta_data": [{"key": "_refunded_item_id", "value": str(item_id or _line_id(cart, name))}],
            }
        ],
        "tax_lines": [
            {"id": 1702, "rate_id": 1, "rate_code": "NL-BTW-1", "tax_total": tax, "rate_percent": 21}
        ],
    }


def _plan(refund: dict[str, Any], cart: str, **options: Any) -> CreditPlan:
    return plan_credit(
        Refund.model_validate(refund),
        order=Order.model_validate(order_document(cart)),
        reference=REFERENCE,
        options=PlanOptions(**options),
    )


def _rows(plan: CreditPlan) -> list[tuple[str, Decimal, Decimal]]:
    return [(line.description, line.quantity, line.price) for line in plan.lines]


def test_refunded_pieces_at_a_whole_cent_price_are_credited_as_minus_pieces_at_that_price() -> None:
    # Three tea towels at 10.83 each; two come back.
    plan = _plan(_refund("f", "Linnen theedoek Ecru", pieces=2, total="-17.90", tax="-3.76"), "f")
    assert _rows(plan) == [("Retour: Linnen theedoek Ecru", Decimal(-2), Decimal("10.83"))]


def test_one_refunded_piece_reads_without_a_count() -> None:
    plan = _plan(_refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34"), "f")
    assert _rows(plan) == [("Retour: Katoenen schort Olijfgroen", Decimal(-1), Decimal("42.29"))]


def test_pieces_without_a_whole_cent_price_are_one_line_with_the_count_in_words() -> None:
    # Two mugs for 30.01: 15.005 each is no price Moneybird takes.
    plan = _plan(_refund("a", "Koffiemok Delfts Blauw", pieces=2, total="-24.80", tax="-5.21"), "a")
    assert _rows(plan) == [("Retour: 2 × Koffiemok Delfts Blauw", Decimal(-1), Decimal("30.01"))]


def test_a_credit_takes_the_default_workflow_and_style_unless_others_are_configured() -> None:
    refund = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34")
    default_flow = next(w.id for w in REFERENCE.workflows if w.type == "InvoiceWorkflow" and w.default)
    default_style = next(s.id for s in REFERENCE.document_styles if s.default)
    assert (_plan(refund, "f").workflow_id, _plan(refund, "f").document_style_id) == (
        default_flow,
        default_style,
    )
    configured = _plan(refund, "f", workflow_id="31", document_style_id="32")
    assert (configured.workflow_id, configured.document_style_id) == ("31", "32")


def test_a_refund_naming_an_order_line_the_order_lacks_is_credited_at_its_own_rate() -> None:
    refund = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34", item_id=999999)
    plan = _plan(refund, "f")
    assert [line.tax_rate_id for line in plan.lines] == [SALES_21]
    assert plan.total == Decimal("-42.29")


@pytest.mark.parametrize("amount", ["1.005", "-0.01"])
def test_only_a_non_negative_whole_cent_amount_is_spread(amount: str) -> None:
    with pytest.raises(ValueError, match=f"^can only spread a non-negative whole-cent amount, not {amount}$"):
        spread_cents(Decimal(amount), {"a": Decimal(1)})


def test_a_free_line_in_the_order_does_not_end_the_spread_of_an_amount_only_refund() -> None:
    document = order_document("b")
    free = dict(document["line_items"][0]) | {
        "id": 118703,
        "name": "Proefzakje thee (gratis)",
        "total": "0.00",
    }
    free |= {
        "subtotal": "0.00",
        "total_tax": "0.00",
        "subtotal_tax": "0.00",
        "taxes": [{"id": 1, "total": "0"}],
    }
    document["line_items"].insert(1, free)
    plan = plan_credit(
        Refund.model_validate({"id": 80, "amount": document["total"]}),
        order=Order.model_validate(document),
        reference=REFERENCE,
        options=PlanOptions(),
    )
    # Teapot and shipping at 21 %, the tea after the free line at 9 %.
    assert plan.spread == {SALES_21: Decimal("35.94"), SALES_9: Decimal("19.47")}


def test_ten_pieces_read_as_ten_in_the_credit_line() -> None:
    cart = dict(CARTS["a"]) | {
        "items": [CartItem("Koffiemok Delfts Blauw", Decimal("12.40"), 10, sku="MOK-DB-01")]
    }
    document = build_order(**cart)
    (mugs,) = document["line_items"]
    refund = {
        "id": 81,
        "amount": str(Decimal(mugs["total"]) + Decimal(mugs["total_tax"])),
        "line_items": [
            {
                "id": 82,
                "name": mugs["name"],
                "quantity": -10,
                "total": f"-{mugs['total']}",
                "total_tax": f"-{mugs['total_tax']}",
                "taxes": [{"id": 1, "total": f"-{mugs['total_tax']}"}],
                "meta_data": [{"key": "_refunded_item_id", "value": str(mugs["id"])}],
            }
        ],
    }
    plan = plan_credit(
        Refund.model_validate(refund),
        order=Order.model_validate(document),
        reference=REFERENCE,
        options=PlanOptions(),
    )
    # 150.04 for ten is no whole-cent price per piece: one line, the count in words.
    assert _rows(plan) == [("Retour: 10 × Koffiemok Delfts Blauw", Decimal(-1), Decimal("150.04"))]


def _shipping_back(**line: Any) -> dict[str, Any]:
    return {"id": 1703, "method_title": "PostNL pakket", "total": "-4.95", "total_tax": "-1.04"} | line


def _with_shipping(refund: dict[str, Any], shipping: dict[str, Any]) -> dict[str, Any]:
    gross = Decimal(refund["amount"]) - Decimal(shipping["total"]) - Decimal(shipping["total_tax"])
    return refund | {"amount": str(gross), "shipping_lines": [shipping]}


def test_products_are_credited_on_the_product_ledger_and_shipping_on_the_shipping_ledger() -> None:
    apron = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34")
    refund = _with_shipping(apron, _shipping_back(taxes=[{"id": 1, "total": "-1.04"}]))
    both = _plan(refund, "f", ledger_account_id="41", shipping_ledger_account_id="42")
    assert [line.ledger_account_id for line in both.lines] == ["41", "42"]
    one = _plan(refund, "f", ledger_account_id="41")
    assert [line.ledger_account_id for line in one.lines] == ["41", "41"]


def test_refunded_shipping_without_its_vat_takes_the_rate_of_the_shipping_line_it_names() -> None:
    # WooCommerce leaves a zero tax off the refund line; the order's shipping line says 21 %.
    apron = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34")
    named = _shipping_back(
        total="-5.99", total_tax="0", meta_data=[{"key": "_refunded_item_id", "value": "153707"}]
    )
    plan = _plan(_with_shipping(apron, named), "f")
    assert [line.tax_rate_id for line in plan.lines] == [SALES_21, SALES_21]


@pytest.mark.parametrize(
    ("shipping", "refused"),
    [
        (
            _shipping_back(taxes=[{"id": 1, "total": "-0.52"}, {"id": 2, "total": "-0.52"}]),
            "refunded shipping 'PostNL pakket' carries VAT at 2 rates; a credit line books one rate — "
            "credit it by hand",
        ),
        (
            _shipping_back(total="-5.99", total_tax="0", method_title=""),
            "refunded shipping 'Shipping' carries no VAT and names no order line; which rate it belongs "
            "to cannot be told — credit it by hand",
        ),
        (
            _shipping_back(taxes=[{"id": 99, "total": "-1.04"}]),
            "refunded shipping 'PostNL pakket' is taxed at WooCommerce tax rate 99, which the order does "
            "not list among its taxes — credit it by hand",
        ),
        (
            _shipping_back(total="4.95", total_tax="1.04", taxes=[{"id": 1, "total": "1.04"}]),
            "refunded shipping 'PostNL pakket' has a non-negative amount (5.99); refund lines are negative — "
            "credit it by hand",
        ),
    ],
    ids=["two rates", "no rate", "unknown rate", "positive"],
)
def test_a_refund_line_that_cannot_be_credited_exactly_says_which_and_why(
    shipping: dict[str, Any], refused: str
) -> None:
    apron = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34")
    refund = apron | {"amount": "100.00", "shipping_lines": [shipping]}
    with pytest.raises(CreditRefused) as caught:
        _plan(refund, "f")
    assert str(caught.value) == refused


def test_a_refunded_fee_and_line_are_named_as_such_when_refused() -> None:
    fee = {"id": 1704, "name": "", "total": "5.00", "total_tax": "0", "taxes": []}
    apron = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34")
    with pytest.raises(CreditRefused, match=r"^refunded fee 'item' carries no VAT and names no order line"):
        _plan(apron | {"amount": "100.00", "fee_lines": [fee]}, "f")
    positive = _refund("f", "Katoenen schort Olijfgroen", pieces=-1, total="34.95", tax="7.34")
    with pytest.raises(
        CreditRefused, match=r"^refunded line 'Katoenen schort Olijfgroen' has a non-negative"
    ):
        _plan(positive | {"amount": "1.00"}, "f")


def test_a_credit_follows_the_configured_tax_rates_as_the_invoice_did() -> None:
    twin = TaxRate("468139513777777777", "21% btw (webshop)", Decimal(21), "sales_invoice")
    reference = replace(REFERENCE, tax_rates=(*REFERENCE.tax_rates, twin))
    refund = _refund("f", "Katoenen schort Olijfgroen", pieces=1, total="-34.95", tax="-7.34")
    plan = plan_credit(
        Refund.model_validate(refund),
        order=Order.model_validate(order_document("f")),
        reference=reference,
        options=PlanOptions(tax_rate_overrides={"21": twin.id}),
    )
    assert [line.tax_rate_id for line in plan.lines] == [twin.id]


@pytest.mark.parametrize("amount", ["30.01", "30.00"])
def test_a_refunded_line_with_fractions_of_a_cent_is_refused_naming_the_line_and_its_price(
    amount: str,
) -> None:
    # A shop set to six decimals: two mugs back for 24.8000 + 5.2066. A refund of 30.01 would leave
    # 0.0034 to spread over the rates, which is no amount of money either.
    mugs = _refund("a", "Koffiemok Delfts Blauw", pieces=2, total="-24.8000", tax="-5.2066")
    with pytest.raises(CreditRefused) as caught:
        _plan(mugs | {"amount": amount}, "a")
    assert str(caught.value) == (
        "credit line 'Retour: 2 × Koffiemok Delfts Blauw' would need a price of 30.0066, not whole cents"
    )
