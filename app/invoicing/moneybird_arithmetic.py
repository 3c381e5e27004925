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
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.invoicing.plan import InvoicePlan

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


def predict_totals(plan: InvoicePlan, rounding: Rounding) -> tuple[Decimal, dict[str, Decimal]]:
    """What Moneybird will show for this plan: total incl. VAT and VAT per tax rate id."""
    return invoice_totals(
        ((line.tax_rate_id, line.total) for line in plan.lines),
        {rate_id: rate.percentage for rate_id, rate in plan.tax_rates.items()},
        rounding=rounding,
        prices_are_incl_tax=plan.prices_are_incl_tax,
    )
