"""A negative fee WooCommerce spread over the cart's tax classes, split back into one part per rate.

Each share's net follows from its tax (tax ÷ rate); what is left over is WooCommerce's rounding when
it stays within what that rounding can give — a cent per rate, and half a cent of tax ÷ rate more
when the shop rounded the shares to cents (WooCommerce ≥ 10.0) — and goes onto the largest share;
more than that is an untaxed rest, booked at 0 %; a rest of the other sign than the fee means the
taxes were stacked on one amount, which Moneybird cannot book on one line.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.invoicing.invoice_plan import PlanContext
from app.invoicing.plan_lines import _split_mixed_line
from app.invoicing.vat import OrderVat, RateBook, VatRefusal
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from tests.invoicing.reference_carts import order

REFERENCE = sandbox_reference()
RATES = {rate.id: rate for rate in REFERENCE.tax_rates}
D = Decimal


def _split(*, net: str, tax: str, shares: dict[str, str]) -> dict[str, Decimal]:
    vat = OrderVat(treatment="domestic", rates={}, exempt_rate=None, shop_vat={})
    ctx = PlanContext(order("a"), vat, RateBook(REFERENCE), None, None)
    rates = {rate_id: RATES[rate_id] for rate_id in shares}
    parts = _split_mixed_line(
        ctx,
        net=D(net),
        tax=D(tax),
        raw={rate_id: D(amount) for rate_id, amount in shares.items()},
        rates=rates,
        what="fee 'Korting'",
    )
    split = {rate.id: amount for rate, amount in parts}
    assert sum(split.values()) == D(net) + D(tax)  # the parts are the fee, to the cent
    return split


# Shares rounded to cents (WooCommerce 10.0): -1.26 is 21 % of -6.00, -0.36 is 9 % of -4.00; the
# rounding may leave up to 0.01 + 0.005/0.21 + 0.01 + 0.005/0.09 = 9.9 cents.
@pytest.mark.parametrize(
    ("net", "expected"),
    [
        ("-10.00", {sb.SALES_21: "-7.26", sb.SALES_9: "-4.36"}),
        ("-10.09", {sb.SALES_21: "-7.35", sb.SALES_9: "-4.36"}),  # 9 cents: rounding, onto the largest
        ("-10.10", {sb.SALES_21: "-7.26", sb.SALES_9: "-4.36", sb.SALES_0: "-0.10"}),  # more: untaxed
    ],
)
def test_a_rest_within_the_rounding_of_cent_shares_goes_onto_the_largest_share(
    net: str, expected: dict[str, str]
) -> None:
    split = _split(net=net, tax="-1.62", shares={sb.SALES_21: "-1.26", sb.SALES_9: "-0.36"})
    assert split == {rate_id: D(amount) for rate_id, amount in expected.items()}


def test_the_largest_share_is_the_largest_amount_whichever_rate_it_has() -> None:
    # -0.90 is 9 % of -10.00, -0.21 is 21 % of -1.00: now the 9 % share is the larger one.
    split = _split(net="-11.09", tax="-1.11", shares={sb.SALES_21: "-0.21", sb.SALES_9: "-0.90"})
    assert split == {sb.SALES_21: D("-1.21"), sb.SALES_9: D("-10.99")}


# Shares at full precision (WooCommerce 9.9, or dp 6): a cent of rounding per rate, 2 cents in all.
@pytest.mark.parametrize(
    ("net", "expected"),
    [
        ("-10.02", {sb.SALES_21: "-7.28", sb.SALES_9: "-4.36"}),  # exactly the rounding: absorbed
        ("-9.98", {sb.SALES_21: "-7.24", sb.SALES_9: "-4.36"}),  # the other way, as much: not stacked
    ],
)
def test_precise_shares_leave_at_most_a_cent_per_rate_to_absorb(net: str, expected: dict[str, str]) -> None:
    split = _split(net=net, tax="-1.62", shares={sb.SALES_21: "-1.260004", sb.SALES_9: "-0.360003"})
    assert split == {rate_id: D(amount) for rate_id, amount in expected.items()}


def test_the_line_tax_woocommerce_rounded_on_its_own_is_kept_on_the_largest_share() -> None:
    # -1.264 and -0.364 round to -1.26 and -0.36, but the line's own tax, -1.628, to -1.63.
    split = _split(net="-10.06", tax="-1.63", shares={sb.SALES_21: "-1.264", sb.SALES_9: "-0.364"})
    assert split == {sb.SALES_21: D("-7.29"), sb.SALES_9: D("-4.40")}


@pytest.mark.parametrize(
    ("net", "tax", "shares"),
    [
        ("-10.00", "-1.80", {sb.SALES_21: "-1.26", sb.SALES_9: "-0.54"}),  # 6.00 + 6.00 of 10.00
        ("-11.80", "-1.80", {sb.SALES_21: "-1.26", sb.SALES_9: "-0.54"}),  # 20 cents over: still too much
        ("0.50", "0.30", {sb.SALES_21: "0.21", sb.SALES_9: "0.09"}),  # a surcharge taxed twice over
    ],
)
def test_taxes_stacked_on_one_amount_are_refused_naming_them(
    net: str, tax: str, shares: dict[str, str]
) -> None:
    with pytest.raises(VatRefusal) as refused:
        _split(net=net, tax=tax, shares=shares)
    assert "fee 'Korting' carries several taxes on the same amount" in refused.value.reason
    assert refused.value.fix == "book this order by hand"
