"""The refund → credit invoice plan: exact totals, the refunded line's own rate, proportional spreads."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, invoice_totals
from app.invoicing.plan import PlanOptions, plan_invoice
from app.invoicing.refund_plan import CreditPlan, CreditRefused, plan_credit, spread_cents
from app.sandbox.administration import SALES_0, SALES_9, SALES_21, sandbox_reference
from app.woocommerce.models import Order, Refund
from tests import recorded
from tests.examples import examples
from tests.invoicing.reference_carts import order_document

CENT = Decimal("0.01")


def _fixture(name: str) -> dict[str, Any]:
    return order_document(name[0])


def _apron_line_id() -> int:
    return next(int(line["id"]) for line in _fixture("f")["line_items"] if "schort" in line["name"])


def _refund_1612() -> dict[str, Any]:
    """Order (f)'s refund as WooCommerce returns it: one apron back, with its VAT."""
    return {
        "id": 1612,
        "date_created_gmt": "2025-11-12T13:05:33",
        "amount": "42.29",
        "reason": "Retour: schort in verkeerde maat",
        "refunded_payment": True,
        "line_items": [
            {
                "id": 1613,
                "name": "Katoenen schort Olijfgroen",
                "quantity": -1,
                "subtotal": "-34.95",
                "subtotal_tax": "-7.34",
                "total": "-34.95",
                "total_tax": "-7.34",
                "taxes": [{"id": 1, "total": "-7.34", "subtotal": "-7.34"}],
                "meta_data": [{"key": "_refunded_item_id", "value": str(_apron_line_id())}],
                "sku": "SCH-KAT-OLIJF",
            }
        ],
        "tax_lines": [
            {"id": 1614, "rate_id": 1, "rate_code": "NL-BTW-1", "tax_total": "-7.34", "rate_percent": 21}
        ],
    }


def _plan(refund: dict[str, Any], order: dict[str, Any]) -> CreditPlan:
    return plan_credit(
        Refund.model_validate(refund),
        order=Order.model_validate(order),
        reference=sandbox_reference(),
        options=PlanOptions(),
    )


def _moneybird_total(plan: CreditPlan) -> set[Decimal]:
    return {
        invoice_totals(
            ((line.tax_rate_id, line.total) for line in plan.lines),
            {rate_id: rate.percentage for rate_id, rate in plan.tax_rates.items()},
            rounding=mode,
            prices_are_incl_tax=True,
        )[0]
        for mode in ROUNDING_MODES
    }


def test_a_refunded_line_is_credited_at_its_own_rate_for_exactly_the_refund() -> None:
    plan = _plan(_refund_1612(), _fixture("f-partially-refunded.json"))
    assert plan.reference == "WooCommerce #1537 refund 1612"
    assert plan.total == Decimal("-42.29")
    assert _moneybird_total(plan) == {Decimal("-42.29")}
    [line] = plan.lines
    assert (line.quantity, line.price, line.tax_rate_id) == (Decimal(-1), Decimal("42.29"), SALES_21)
    assert "Katoenen schort Olijfgroen" in line.description
    assert plan.shop_vat == {SALES_21: Decimal("-7.34")}
    assert str(plan.invoice_date) == "2025-11-12"


def test_an_amount_only_refund_of_a_mixed_rate_order_is_split_per_rate() -> None:
    order = _fixture("b-incl-tax-21-and-9pct.json")
    plan = _plan({"id": 77, "amount": "20.00"}, order)
    assert plan.total == Decimal("-20.00")
    assert _moneybird_total(plan) == {Decimal("-20.00")}
    assert set(plan.spread) == {SALES_21, SALES_9}
    assert sum(plan.spread.values(), Decimal(0)) == Decimal("20.00")


def test_a_full_amount_only_refund_mirrors_the_order_per_rate() -> None:
    order = _fixture("c-coupons-percent-and-fixed-cart-mixed-rates.json")
    plan = _plan({"id": 78, "amount": order["total"]}, order)
    assert plan.total == -Decimal(order["total"])
    # What the customer paid per rate, VAT included: plaid and shipping at 21 %, the book at 9 %.
    assert plan.spread == {SALES_21: Decimal("68.22"), SALES_9: Decimal("44.44")}


def test_lines_plus_an_extra_amount_are_both_credited() -> None:
    refund = _refund_1612() | {"amount": "45.29"}
    plan = _plan(refund, _fixture("f-partially-refunded.json"))
    assert plan.total == Decimal("-45.29")
    assert plan.spread == {SALES_21: Decimal("3.00")}


def test_a_refund_smaller_than_its_lines_is_refused() -> None:
    with pytest.raises(CreditRefused, match="only 40.00 was refunded"):
        _plan(_refund_1612() | {"amount": "40.00"}, _fixture("f-partially-refunded.json"))


@pytest.mark.parametrize("amount", ["0", "-1.00", "1.005"])
def test_amounts_that_are_not_positive_whole_cents_are_refused(amount: str) -> None:
    with pytest.raises(CreditRefused, match="whole-cent"):
        _plan({"id": 79, "amount": amount}, _fixture("a-simple-nl-21pct-excl.json"))


def test_reverse_charge_orders_are_credited_at_the_reverse_charge_rate() -> None:
    order = _fixture("d-b2b-eu-reverse-charge.json")
    plan = _plan({"id": 80, "amount": "100.00"}, order)
    assert [rate.percentage for rate in plan.tax_rates.values()] == [Decimal(0)]
    assert plan.total == Decimal("-100.00")


# ── the spread, as a property ────────────────────────────────────────────────────────────────

amounts = st.integers(min_value=0, max_value=10_000_000).map(lambda cents: Decimal(cents) * CENT)
weights = st.dictionaries(
    st.sampled_from(["21", "9", "0", "DE:19", "BE:21", "FR:20"]),
    st.integers(min_value=1, max_value=5_000_000).map(lambda cents: Decimal(cents) * CENT),
    min_size=1,
)


@settings(max_examples=examples(300), deadline=None)
@given(amount=amounts, shares=weights)
def test_the_spread_adds_up_exactly_and_each_part_is_within_a_cent(
    amount: Decimal, shares: dict[str, Decimal]
) -> None:
    parts = spread_cents(amount, shares)
    assert sum(parts.values(), Decimal(0)) == amount
    whole = sum(shares.values(), Decimal(0))
    for key, part in parts.items():
        assert part == part.quantize(CENT)
        assert part >= 0
        assert abs(part - amount * shares[key] / whole) < CENT


@settings(max_examples=examples(100), deadline=None)
@given(cents=st.integers(min_value=1, max_value=5541))
def test_any_amount_only_refund_of_a_mixed_order_credits_exactly_under_both_roundings(cents: int) -> None:
    amount = Decimal(cents) * CENT
    plan = _plan({"id": 81, "amount": str(amount)}, _fixture("b-incl-tax-21-and-9pct.json"))
    assert _moneybird_total(plan) == {-amount}


def test_the_spread_refuses_nothing_to_spread_over() -> None:
    with pytest.raises(ValueError, match="no positive weight"):
        spread_cents(Decimal("1.00"), {"21": Decimal(0)})


# ── refunds recorded from the real shop ─────────────────────────────────────────────────────


@pytest.mark.parametrize("dp6", [False, True], ids=["dp2", "dp6"])
@pytest.mark.parametrize("case", recorded.refunded_cases())
@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_every_recorded_refund_is_credited_for_exactly_its_amount(version: str, case: str, dp6: bool) -> None:
    order = recorded.order(version, case, dp6=dp6)
    for refund in recorded.refunds(version, case, dp6=dp6):
        plan = _plan(refund, order)
        assert plan.total == -Decimal(refund["amount"])
        assert _moneybird_total(plan) == {-Decimal(refund["amount"])}


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_a_refunded_0_percent_line_is_credited_at_the_0_percent_rate_it_was_invoiced_at(version: str) -> None:
    """A gift voucher at 0 % next to a 21 % mug: the order line and its refund carry a zero tax at
    the shop's 0 % rate — the rate the invoice booked the voucher at."""
    order = recorded.order(version, "voucher-0-line-refund", dp6=True)
    (refund,) = recorded.refunds(version, "voucher-0-line-refund", dp6=True)
    assert [Decimal(tax["total"]) for tax in refund["line_items"][0]["taxes"]] == [Decimal(0)]
    plan = _plan(refund, order)
    assert [(line.quantity, line.price, line.tax_rate_id) for line in plan.lines] == [
        (Decimal(-1), Decimal("25.00"), SALES_0)
    ]
    invoiced = plan_invoice(Order.model_validate(order), reference=sandbox_reference(), options=PlanOptions())
    voucher = next(line for line in invoiced.lines if line.description.startswith("Cadeaubon"))
    assert voucher.tax_rate_id == plan.lines[0].tax_rate_id


def test_a_refunded_untaxed_line_in_a_taxed_order_is_credited_at_0_percent_like_its_invoice_line() -> None:
    """A product WooCommerce does not tax at all (no tax entries) is invoiced at the 0 % rate."""
    order = recorded.order("10.0.2", "voucher-0-line-refund", dp6=True)
    (refund,) = recorded.refunds("10.0.2", "voucher-0-line-refund", dp6=True)
    for line in [*order["line_items"], *refund["line_items"]]:
        if line["name"] == "Cadeaubon":
            line["taxes"] = []
    order["tax_lines"] = [line for line in order["tax_lines"] if line["rate_percent"] != 0]
    invoiced = plan_invoice(Order.model_validate(order), reference=sandbox_reference(), options=PlanOptions())
    voucher = next(line for line in invoiced.lines if line.description.startswith("Cadeaubon"))
    assert [line.tax_rate_id for line in _plan(refund, order).lines] == [voucher.tax_rate_id] == [SALES_0]
