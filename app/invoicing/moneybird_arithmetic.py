"""How Moneybird turns invoice lines into totals, under both VAT rounding behaviours.

Moneybird does not document whether it rounds VAT per line or once per tax rate over the whole
invoice (moneybird-api.md §4.2), so woobird predicts both and only accepts a plan whose total is
right under either. Rounding is half-up (ties away from zero), Dutch practice and what Ruby's
BigDecimal does by default.

- Prices excluding VAT: VAT = net × rate, rounded per line or per rate; total = net + VAT.
- Prices including VAT: net = gross ÷ (1 + rate), rounded per line or per rate; VAT = gross − net;
  total = gross, whichever way it rounds. This is why woobird sends gross prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol


class PricedLine(Protocol):
    @property
    def tax_rate_id(self) -> str: ...
    @property
    def total(self) -> Decimal: ...


class PricedRate(Protocol):
    @property
    def percentage(self) -> Decimal: ...


class PricedPlan(Protocol):
    """What the predictions read of a plan (app.invoicing.invoice_plan.InvoicePlan is one)."""

    @property
    def lines(self) -> Sequence[PricedLine]: ...
    @property
    def tax_rates(self) -> Mapping[str, PricedRate]: ...
    @property
    def prices_are_incl_tax(self) -> bool: ...
    @property
    def shop_vat(self) -> Mapping[str, Decimal]: ...


Rounding = Literal["per_line", "per_rate"]
ROUNDING_MODES: tuple[Rounding, ...] = ("per_line", "per_rate")

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def net_of_gross(gross: Decimal, percentage: Decimal) -> Decimal:
    """The net part of a gross amount, as Moneybird rounds it."""
    return round_cents(gross * HUNDRED / (HUNDRED + percentage))


def vat_of_gross(gross: Decimal, percentage: Decimal) -> Decimal:
    return gross - net_of_gross(gross, percentage)


def vat_of_net(net: Decimal, percentage: Decimal) -> Decimal:
    return round_cents(net * percentage / HUNDRED)


def rate_totals(
    line_totals: Sequence[Decimal],
    percentage: Decimal,
    *,
    rounding: Rounding,
    prices_are_incl_tax: bool,
) -> tuple[Decimal, Decimal]:
    """(total incl. VAT, VAT) of the lines that share one tax rate.

    `line_totals` are amount × price as entered, so gross when prices include VAT.
    """
    amounts = [round_cents(total) for total in line_totals]
    entered = sum(amounts, Decimal(0))
    if prices_are_incl_tax:
        if rounding == "per_line":
            vat = sum((vat_of_gross(amount, percentage) for amount in amounts), Decimal(0))
        else:
            vat = vat_of_gross(entered, percentage)
        return entered, vat
    if rounding == "per_line":
        vat = sum((vat_of_net(amount, percentage) for amount in amounts), Decimal(0))
    else:
        vat = vat_of_net(entered, percentage)
    return entered + vat, vat


def invoice_totals(
    lines: Iterable[tuple[str, Decimal]],
    percentages: Mapping[str, Decimal],
    *,
    rounding: Rounding,
    prices_are_incl_tax: bool,
) -> tuple[Decimal, dict[str, Decimal]]:
    """(total incl. VAT, VAT per tax rate id) for (tax rate id, amount × price) pairs."""
    by_rate: dict[str, list[Decimal]] = {}
    for rate_id, line_total in lines:
        by_rate.setdefault(rate_id, []).append(line_total)
    total = Decimal(0)
    vat_by_rate: dict[str, Decimal] = {}
    for rate_id, amounts in by_rate.items():
        rate_total, vat = rate_totals(
            amounts, percentages[rate_id], rounding=rounding, prices_are_incl_tax=prices_are_incl_tax
        )
        total += rate_total
        vat_by_rate[rate_id] = vat
    return total, vat_by_rate


def predict_totals(plan: PricedPlan, rounding: Rounding) -> tuple[Decimal, dict[str, Decimal]]:
    """What Moneybird will show for this plan: total incl. VAT and VAT per tax rate id."""
    return invoice_totals(
        ((line.tax_rate_id, line.total) for line in plan.lines),
        {rate_id: rate.percentage for rate_id, rate in plan.tax_rates.items()},
        rounding=rounding,
        prices_are_incl_tax=plan.prices_are_incl_tax,
    )


def predicted_total(plan: PricedPlan, rounding: Rounding) -> Decimal:
    return predict_totals(plan, rounding)[0]


def predicted_vat(plan: PricedPlan, rounding: Rounding) -> dict[str, Decimal]:
    return predict_totals(plan, rounding)[1]


def vat_deviation(plan: PricedPlan, rounding: Rounding) -> dict[str, Decimal]:
    """Moneybird's VAT minus the shop's, per tax rate id; zero where they agree."""
    predicted = predicted_vat(plan, rounding)
    rate_ids = dict.fromkeys([*plan.shop_vat, *predicted])
    return {
        rate_id: predicted.get(rate_id, Decimal(0)) - plan.shop_vat.get(rate_id, Decimal(0))
        for rate_id in rate_ids
    }
