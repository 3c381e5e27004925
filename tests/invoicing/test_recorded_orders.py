"""Orders recorded from a real WooCommerce 9.9.5 and 10.0.2 become exact invoice plans, at either
precision the shop answers with (its default `dp` of 2, or the `?dp=6` woobird asks for)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, predicted_total, predicted_vat
from app.invoicing.plan import InvoicePlan, PlanOptions, plan_invoice
from app.sandbox.administration import sandbox_reference
from app.woocommerce.models import Order
from tests import recorded

REFERENCE = sandbox_reference()
PRECISIONS = [False, True]


def _plan(document: dict[str, Any]) -> InvoicePlan:
    return plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())


def _shop_vat(document: dict[str, Any]) -> dict[Decimal, Decimal]:
    """VAT per percentage as the shop's tax lines say (its own figure, never ours)."""
    vat: dict[Decimal, Decimal] = {}
    for line in document["tax_lines"]:
        percentage = Decimal(str(line["rate_percent"]))
        vat[percentage] = (
            vat.get(percentage, Decimal(0)) + Decimal(line["tax_total"]) + Decimal(line["shipping_tax_total"])
        )
    return vat


def _lines(plan: InvoicePlan) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(line.description, line.quantity, line.price, line.tax_rate_id) for line in plan.lines]


@pytest.mark.parametrize("dp6", PRECISIONS, ids=["dp2", "dp6"])
@pytest.mark.parametrize("case", recorded.cases())
@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_every_recorded_order_plans_to_its_exact_total(version: str, case: str, dp6: bool) -> None:
    document = recorded.order(version, case, dp6=dp6)
    plan = _plan(document)
    paid = Decimal(document["total"])
    assert plan.lines_total == paid
    assert {predicted_total(plan, rounding) for rounding in ROUNDING_MODES} == {paid}
    percentages = {rate.id: rate.percentage for rate in REFERENCE.tax_rates}
    for rounding in ROUNDING_MODES:
        for rate_id, vat in predicted_vat(plan, rounding).items():
            shop = _shop_vat(document).get(percentages[rate_id], Decimal(0))
            assert abs(vat - shop) <= Decimal("0.02"), (rounding, rate_id, vat, shop)


@pytest.mark.parametrize("case", recorded.cases())
def test_the_precision_of_the_answer_changes_no_invoice_line(case: str) -> None:
    """9.9.5 sends the raw per-rate taxes at any `dp`: its default answer and its `?dp=6` answer
    (totals with six decimals) make the same invoice."""
    default, six = (_lines(_plan(recorded.order("9.9.5", case, dp6=dp6))) for dp6 in PRECISIONS)
    assert default == six


def test_read_with_dp_6_10_0_splits_a_negative_fee_as_9_9_does() -> None:
    """The same order on both versions: with `?dp=6` 10.0.2 gives back the raw shares, and the fee
    is split over 21 % and 9 % to the cent as 9.9.5's order is."""

    def fee_lines(version: str, *, dp6: bool) -> list[tuple[str, Decimal, Decimal, str]]:
        return [
            line
            for line in _lines(_plan(recorded.order(version, "negative-fee-21-9", dp6=dp6)))
            if "Korting" in line[0]
        ]

    assert fee_lines("10.0.2", dp6=True) == fee_lines("9.9.5", dp6=False)
    assert len(fee_lines("9.9.5", dp6=False)) == 2


def test_a_negative_fee_over_two_rates_books_from_the_rounded_taxes_of_10_0() -> None:
    """10.0.2 at its default precision sends -0.69 / -0.13 for the fee's shares of -0.685836 /
    -0.128170: their nets no longer add up to the fee, but it is still one fee over two rates."""
    document = recorded.order("10.0.2", "negative-fee-21-9")
    fee = next(line for line in document["fee_lines"] if line["total"].startswith("-"))
    assert [tax["total"] for tax in fee["taxes"]] == ["-0.69", "-0.13"]
    plan = _plan(document)
    fee_lines = [line for line in plan.lines if line.description.startswith("Korting")]
    assert len(fee_lines) == 2
    assert sum((line.total for line in fee_lines), Decimal(0)) == Decimal(fee["total"]) + Decimal(
        fee["total_tax"]
    )
    assert plan.lines_total == Decimal(document["total"])
