"""The six reference orders as plans: lines, totals under both roundings, VAT per rate, contact."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, predicted_total, predicted_vat, vat_deviation
from app.invoicing.plan import InvoicePlan, PlanOptions, plan_invoice
from app.plan_options import plan_options
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from app.sandbox.moneybird import compute_totals
from app.sandbox.woocommerce.cart import CartItem, Coupon, Customer
from app.sandbox.woocommerce.checkout import build_order
from app.settings import load_settings
from app.woocommerce.models import Order
from tests.invoicing.reference_carts import CARTS, order

REFERENCE = sandbox_reference()
D = Decimal
NOW = datetime(2025, 6, 1, 10, tzinfo=UTC)


def _plan(name: str, **options: object) -> InvoicePlan:
    return plan_invoice(order(name), reference=REFERENCE, options=PlanOptions(**options))  # type: ignore[arg-type]


def _rows(plan: InvoicePlan) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(line.kind, line.quantity, line.price, line.tax_rate_id) for line in plan.lines]


def test_a_line_not_divisible_per_piece_is_split_and_the_total_stays_exact() -> None:
    plan = _plan("a")
    # 24.80 + 5.21 = 30.01 for two mugs: 15.005 each is not a price Moneybird takes.
    assert _rows(plan) == [
        ("product", D(1), D("15.00"), sb.SALES_21),
        ("product", D(1), D("15.01"), sb.SALES_21),
        ("shipping", D(1), D("5.99"), sb.SALES_21),
    ]
    assert plan.lines[0].description == "Koffiemok Delfts Blauw (MOK-DB-01)"
    assert any("15.005" in note for note in plan.notes)
    assert plan.shop_vat == {sb.SALES_21: D("6.25")}


def _vat_per_line_rounding(lines: list[tuple[Decimal, Decimal]], rate_id: str) -> Decimal:
    """VAT of (quantity, gross price) lines as the fake Moneybird rounds it, line by line."""
    details = [{"amount_decimal": str(q), "price": str(p), "tax_rate_id": rate_id} for q, p in lines]
    percentages = {rate.id: rate.percentage for rate in REFERENCE.tax_rates}
    totals = compute_totals(
        details, percentages=percentages, incl_tax=True, rounding="per_line", discount=D(0)
    )
    return sum((tax for _, _, tax in totals.tax_totals), D(0))


@pytest.mark.parametrize(
    ("price", "quantity"),
    # Net 0.90 + VAT 0.19 = 1.09 for three: 2 × 0.36 + 1 × 0.37 would carry 0.18 VAT, not 0.19.
    [(D("0.30"), 3), (D("0.17"), 3), (D("0.15"), 4), (D("0.42"), 4), (D("12.40"), 2)],
)
def test_a_split_line_carries_the_vat_of_the_unsplit_line(price: Decimal, quantity: int) -> None:
    document = build_order(
        order_id=77,
        customer=Customer(first_name="A", last_name="B", email="a@example.nl"),
        items=[CartItem("Knoop", price, quantity)],
        created_at=NOW,
        paid_at=NOW,
    )
    plan = plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())
    pieces = [(line.quantity, line.price) for line in plan.lines if line.kind == "product"]
    gross = D(document["line_items"][0]["subtotal"]) + D(document["line_items"][0]["subtotal_tax"])
    assert len(pieces) == 2
    assert sum(q for q, _ in pieces) == quantity
    assert sum(q * p for q, p in pieces) == gross
    assert _vat_per_line_rounding(pieces, sb.SALES_21) == _vat_per_line_rounding([(D(1), gross)], sb.SALES_21)


def test_b_prices_including_vat_keep_their_gross_prices() -> None:
    plan = _plan("b")
    assert _rows(plan) == [
        ("product", D(1), D("29.95"), sb.SALES_21),
        ("product", D(3), D("6.49"), sb.SALES_9),
        ("shipping", D(1), D("5.99"), sb.SALES_21),
    ]
    assert plan.shop_vat == {sb.SALES_21: D("6.24"), sb.SALES_9: D("1.61")}


def test_c_coupons_become_one_visible_discount_line_per_rate() -> None:
    plan = _plan("c")
    discounts = [
        (line.description, line.price, line.tax_rate_id) for line in plan.lines if line.kind == "discount"
    ]
    # Plaid 59.00 + 12.39 before, 51.43 + 10.80 after; cookbook 49.00 + 4.41 before, 40.77 + 3.67 after.
    assert discounts == [
        ("Korting welkom10, korting5 (21% btw)", D("-9.16"), sb.SALES_21),
        ("Korting welkom10, korting5 (9% btw)", D("-8.97"), sb.SALES_9),
    ]
    products = [(line.quantity, line.price) for line in plan.lines if line.kind == "product"]
    assert products == [(D(1), D("71.39")), (D(1), D("26.70")), (D(1), D("26.71"))]


def test_d_reverse_charge_books_everything_at_the_reverse_charge_rate() -> None:
    plan = _plan("d")
    assert plan.treatment == "reverse_charge"
    assert {line.tax_rate_id for line in plan.lines} == {sb.REVERSE_CHARGE}
    assert plan.contact.tax_number == "BE0765342173"
    assert plan.contact.company_name == "De Zwarte Boon BV"
    assert plan.contact.customer_id == "woo-57"
    assert plan.payment_reference == ""


def test_e_fee_and_free_product_are_lines_of_their_own() -> None:
    plan = _plan("e")
    assert [(line.kind, line.description, line.price) for line in plan.lines] == [
        ("product", "Geurkaars Vijg & Cassis (KAARS-VC-200)", D("22.93")),
        ("product", "Proefstaal geurkaars (gratis) (KAARS-PROEF)", D("0.00")),
        ("shipping", "Verzending: PostNL pakket", D("5.99")),
        ("fee", "Rembourskosten", D("3.57")),
    ]


def test_f_partially_refunded_order_is_invoiced_in_full_and_says_so() -> None:
    plan = _plan("f")
    assert plan.total == D("80.77")
    assert (plan.lines[0].quantity, plan.lines[0].price) == (D(3), D("10.83"))
    assert any("42.29" in note and "credit" in note for note in plan.notes)


@pytest.mark.parametrize("name", sorted(CARTS))
@pytest.mark.parametrize("exact_vat", [False, True])
def test_total_is_exact_and_vat_matches_the_shop_under_both_roundings(name: str, exact_vat: bool) -> None:
    plan = _plan(name, exact_vat=exact_vat)
    expected_total = {"a": "36.00", "b": "55.41", "c": "112.66", "d": "661.50", "e": "32.49", "f": "80.77"}[
        name
    ]
    assert plan.total == D(expected_total)
    for mode in ROUNDING_MODES:
        assert predicted_total(plan, mode) == D(expected_total)
        assert all(deviation == 0 for deviation in vat_deviation(plan, mode).values())
    assert all(line.kind != "vat_correction" for line in plan.lines)  # nothing to correct here


@pytest.mark.parametrize("name", sorted(CARTS))
def test_header_fields(name: str) -> None:
    plan = _plan(name)
    cart = CARTS[name]
    assert plan.reference == f"WooCommerce #{cart['order_id']}"
    assert plan.currency == "EUR"
    assert plan.prices_are_incl_tax
    assert plan.workflow_id == sb.INVOICE_WORKFLOW
    assert plan.document_style_id == sb.DOCUMENT_STYLE
    assert all(line.ledger_account_id is None for line in plan.lines)


def test_invoice_date_is_the_local_payment_day() -> None:
    # Order b was paid 14 April 18:42 UTC; an order paid 31 Dec 23:30 UTC is a January payment.
    assert _plan("b").invoice_date == date(2025, 4, 14)
    paid = order("a").date_paid_gmt
    assert paid is not None
    late = order("a").model_copy(update={"date_paid_gmt": paid.replace(month=12, day=31, hour=23)})
    plan = plan_invoice(late, reference=REFERENCE, options=PlanOptions())
    assert plan.invoice_date == date(2026, 1, 1) == plan.payment_date


def test_guest_customer_id_is_stable_and_case_insensitive() -> None:
    plan = _plan("a")
    shouting = order("a").model_copy(
        update={"billing": order("a").billing.model_copy(update={"email": "SANNE.DEVRIES@example.com"})}
    )
    again = plan_invoice(shouting, reference=REFERENCE, options=PlanOptions())
    assert plan.contact.customer_id.startswith("woo-guest-")
    assert plan.contact.customer_id == again.contact.customer_id


def test_ledger_accounts_from_the_options() -> None:
    plan = _plan("e", ledger_account_id=sb.REVENUE, shipping_ledger_account_id=sb.UNCATEGORISED_REVENUE)
    ledgers = {line.kind: line.ledger_account_id for line in plan.lines}
    assert ledgers == {
        "product": sb.REVENUE,
        "shipping": sb.UNCATEGORISED_REVENUE,
        "fee": sb.UNCATEGORISED_REVENUE,
    }


def _coupon_order() -> Order:
    # 4.99 + 24.50 with 15 % off: 74 + 367 cents, one remainder cent to the dearer item → 4.25 and 20.82,
    # VAT 0.89 + 4.37 (21 %), total 30.33.
    customer = Customer(first_name="Ans", last_name="Kok", email="ans@example.com")
    return Order.model_validate(
        build_order(
            order_id=2001,
            customer=customer,
            items=[CartItem("Zeep", D("4.99")), CartItem("Handdoek", D("24.50"))],
            coupons=[Coupon("zomer", "percent", D(15))],
            created_at=NOW,
            paid_at=NOW,
        )
    )


def test_without_exact_vat_a_cent_of_vat_deviation_is_recorded() -> None:
    plan = plan_invoice(_coupon_order(), reference=REFERENCE, options=PlanOptions())
    # Moneybird per line: 6.04 → 1.05, 29.65 → 5.15, discount −5.36 → −0.93: 5.27 against the shop's 5.26.
    assert plan.shop_vat == {sb.SALES_21: D("5.26")}
    assert vat_deviation(plan, "per_line") == {sb.SALES_21: D("0.01")}
    assert vat_deviation(plan, "per_rate") == {sb.SALES_21: D("0.00")}  # 30.33 / 1.21 → 25.07 net


def test_exact_vat_adds_a_balanced_pair_of_correction_lines() -> None:
    plan = plan_invoice(_coupon_order(), reference=REFERENCE, options=PlanOptions(exact_vat=True))
    corrections = [(line.price, line.tax_rate_id) for line in plan.lines if line.kind == "vat_correction"]
    assert corrections == [(D("-0.03"), sb.SALES_21), (D("0.03"), sb.SALES_0)]
    for mode in ROUNDING_MODES:
        assert predicted_total(plan, mode) == D("30.33")
        assert predicted_vat(plan, mode)[sb.SALES_21] == D("5.26")


def test_options_from_settings() -> None:
    settings = load_settings(
        moneybird_tax_rates={"21.0": "123", "de:19": "456"},
        invoice_exact_vat=True,
        moneybird_workflow_id="789",
    )
    options = plan_options(settings)
    assert options.tax_rate_overrides == {"21": "123", "DE:19": "456"}
    assert options.exact_vat
    assert options.workflow_id == "789"
    assert "_billing_vat_number" in options.vat_number_meta_keys
