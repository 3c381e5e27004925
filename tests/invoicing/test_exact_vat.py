"""Exact VAT (INVOICE_EXACT_VAT) as the bookkeeper sees it: the correction lines are as few and
as small as they can be, a gap of more than ten cents is left alone, and every rate of an invoice
is made exact on its own, with notes that name the lines the invoice shows."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from functools import cache

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.invoicing.exact_vat import find_vat_correction, vat_corrections
from app.invoicing.invoice_plan import PlanContext, PlanLine
from app.invoicing.vat import OrderVat, RateBook
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from app.sandbox.moneybird import compute_totals
from tests.examples import examples
from tests.invoicing.reference_carts import order

D = Decimal
CENT = D("0.01")
REFERENCE = sandbox_reference()
RATES = {rate.id: rate for rate in REFERENCE.tax_rates}
# A correction line is small: the brute force below looks no further from zero (a euro), which
# keeps it cheap; farther out, two lines of a few euros can often replace three of a few cents.
SEARCHED_CENTS = 100


def _cents(amounts: str) -> list[Decimal]:
    return [D(amount) for amount in amounts.split()]


@cache
def _vat_cents(gross_cents: int, percentage: Decimal) -> int:
    """VAT in cents of a gross amount as Moneybird rounds it: the net half-up (away from zero)."""
    net = Fraction(gross_cents * 100) / (100 + Fraction(percentage))
    rounded = int(abs(net) + Fraction(1, 2))
    return gross_cents - (rounded if net >= 0 else -rounded)


def _moneybird_vat(grosses: list[Decimal], percentage: Decimal, rounding: str) -> Decimal:
    """VAT of one-piece lines at one rate (prices incl. VAT) by the fake Moneybird's arithmetic."""
    details = [{"amount_decimal": "1", "price": str(gross), "tax_rate_id": "r"} for gross in grosses]
    totals = compute_totals(
        details,
        percentages={"r": percentage},
        incl_tax=True,
        rounding=rounding,  # type: ignore[arg-type]
        discount=D(0),
    )
    return sum((tax for _, _, tax in totals.tax_totals), D(0))


def _gaps(grosses: list[Decimal], percentage: Decimal, target: Decimal) -> tuple[int, int, list[int]]:
    """(VAT the lines still miss when rounded per line, in cents; total in cents; the shifts of the
    rate's total, in cents, that give it the target VAT when rounded once per rate)."""
    cents = [int(gross / CENT) for gross in grosses]
    total = sum(cents)
    line_gap = int(target / CENT) - sum(_vat_cents(c, percentage) for c in cents)
    window = range(-2 * SEARCHED_CENTS, 2 * SEARCHED_CENTS + 1)
    shifts = [s for s in window if _vat_cents(total + s, percentage) == int(target / CENT)]
    return line_gap, total, shifts


def _single_lines(grosses: list[Decimal], percentage: Decimal, target: Decimal) -> list[int]:
    """Every one-line correction within reach, in cents, smallest first."""
    line_gap, _, shifts = _gaps(grosses, percentage, target)
    return sorted((s for s in shifts if s and _vat_cents(s, percentage) == line_gap), key=abs)


def _two_lines_would_do(grosses: list[Decimal], percentage: Decimal, target: Decimal) -> bool:
    line_gap, _, shifts = _gaps(grosses, percentage, target)
    return any(
        first
        and shift - first
        and abs(shift - first) <= SEARCHED_CENTS
        and _vat_cents(first, percentage) + _vat_cents(shift - first, percentage) == line_gap
        for shift in shifts
        for first in range(-SEARCHED_CENTS, SEARCHED_CENTS + 1)
    )


def _holds_in_both_roundings(lines: list[Decimal], percentage: Decimal, target: Decimal) -> bool:
    return all(_moneybird_vat(lines, percentage, mode) == target for mode in ("per_line", "per_rate"))


GROSSES = st.lists(st.integers(min_value=-2000, max_value=5000), min_size=1, max_size=12).map(
    lambda cents: [D(c) * CENT for c in cents]
)
PERCENTAGES = [D(p) for p in ("21", "9", "19", "20", "27", "5.5", "2.1")]
# A shop's VAT a few cents from Moneybird's per-rate figure: what rounding per line leaves behind.
NUDGE = st.integers(min_value=-4, max_value=4)


@settings(max_examples=examples(60), deadline=None)
@given(grosses=GROSSES, percentage=st.sampled_from(PERCENTAGES), nudge=NUDGE)
# Found by search: a one-euro line works as well as the 0.88 that is smaller.
@example(_cents("23.71 5.69 14.2 4.43 6.11 8.88 2.33 6.64 41.33 41.31 22.6"), D("5.5"), 5)
# Found by search: cases a narrower search for the rate's total gives up on, or needs three lines for.
@example(_cents("-8.64 30.62"), D(21), 8)
@example(_cents("10.63 -19.95 8.71 13.2 2.81 13.59 -10.58 36.43 48.1 24.83 10.62 -17.05"), D(21), 6)
def test_whenever_one_line_will_do_the_correction_is_the_smallest_such_line(
    grosses: list[Decimal], percentage: Decimal, nudge: int
) -> None:
    target = _moneybird_vat(grosses, percentage, "per_rate") + nudge * CENT
    line_gap, _, _ = _gaps(grosses, percentage, target)
    shifts = find_vat_correction(grosses, percentage, target)
    if line_gap == 0 and nudge == 0:
        assert shifts == ()
        return
    single = _single_lines(grosses, percentage, target)
    if not single:
        return
    if abs(line_gap) * CENT > D("0.10") or abs(nudge) * CENT > D("0.10"):
        assert shifts is None
        return
    assert shifts == (single[0] * CENT,)


# Found by search: two small lines will do, and a lever search that is off (in which amounts it
# takes as levers, or how many) takes three.
TWO_WILL_DO = [
    (_cents("-7.54 25.22 0.81 -10.97 2.72 47.04 -6.77 41.47"), D(9), -2),
    (_cents("4.46 4.49 -19.88 42.11 6.44 22.25 33.87 20.79"), D(9), 3),
    (_cents("48.87 -12.39 21.65 31.88 -2.75 12.04 28.84 23.45 49.48"), D(27), -7),
]


@pytest.mark.parametrize(("grosses", "percentage", "nudge"), TWO_WILL_DO)
def test_where_two_small_lines_will_do_the_correction_has_two(
    grosses: list[Decimal], percentage: Decimal, nudge: int
) -> None:
    target = _moneybird_vat(grosses, percentage, "per_rate") + nudge * CENT
    assert not _single_lines(grosses, percentage, target)
    assert _two_lines_would_do(grosses, percentage, target)
    shifts = find_vat_correction(grosses, percentage, target)
    assert shifts is not None
    assert len(shifts) == 2
    assert _holds_in_both_roundings([*grosses, *shifts], percentage, target)


# One 21 % line of 100.00 carries 17.36 VAT under either rounding.
@pytest.mark.parametrize("shop_vat", ["17.46", "17.26"])
def test_a_vat_gap_of_exactly_ten_cents_is_still_corrected(shop_vat: str) -> None:
    shifts = find_vat_correction([D("100.00")], D(21), D(shop_vat))
    assert shifts is not None
    assert _holds_in_both_roundings([D("100.00"), *shifts], D(21), D(shop_vat))


@pytest.mark.parametrize("shop_vat", ["17.47", "17.25"])
def test_a_vat_gap_of_more_than_ten_cents_is_not_rounding_and_left_alone(shop_vat: str) -> None:
    assert find_vat_correction([D("100.00")], D(21), D(shop_vat)) is None


# At 21 %: ten lines whose VAT the two roundings put so far apart that one correction line cannot
# fix both (two are needed); at 9 %: three lines.
GROSSES_21 = _cents("0.09 28.51 18.25 10.91 29.56 9.38 24.22 4.19 13.01 1.26")
GROSSES_9 = _cents("12.95 3.49 7.15")


def _per_rate(grosses: list[Decimal], percentage: Decimal, cents_off: int) -> Decimal:
    return _moneybird_vat(grosses, percentage, "per_rate") + cents_off * CENT


SHOP_VAT_21 = D("24.24")
# The shop's VAT per rate, in the order the order's tax lines give them.
ORDERS_OF_RATES = {
    "a zero rate first": {
        sb.SALES_0: D(0),
        sb.SALES_9: _per_rate(GROSSES_9, D(9), 1),
        sb.SALES_21: SHOP_VAT_21,
    },
    "a rate that is exact first": {sb.SALES_9: _per_rate(GROSSES_9, D(9), 0), sb.SALES_21: SHOP_VAT_21},
    "a rate beyond correction first": {
        sb.SALES_9: _per_rate(GROSSES_9, D(9), 20),
        sb.SALES_21: SHOP_VAT_21,
    },
}


@pytest.mark.parametrize("shop_vat", ORDERS_OF_RATES.values(), ids=ORDERS_OF_RATES.keys())
def test_every_rate_is_made_exact_on_its_own_and_the_notes_name_the_lines(
    shop_vat: dict[str, Decimal],
) -> None:
    vat = OrderVat(treatment="domestic", rates={}, exempt_rate=None, shop_vat=shop_vat)
    ctx = PlanContext(order("a"), vat, RateBook(REFERENCE), None, None)
    grosses = {sb.SALES_21: GROSSES_21, sb.SALES_9: GROSSES_9, sb.SALES_0: [D("4.00")]}
    lines = [
        ctx.line("Artikel", D(1), gross, RATES[rate_id], "product")
        for rate_id in shop_vat
        for gross in grosses[rate_id]
    ]
    corrections = vat_corrections(ctx, lines)

    def correcting(rate_id: str) -> list[PlanLine]:
        return [line for line in corrections if line.tax_rate_id == rate_id]

    for rate_id, target in shop_vat.items():
        percentage = RATES[rate_id].percentage
        before = _moneybird_vat(grosses[rate_id], percentage, "per_line")
        if percentage and abs(target - before) <= D("0.10"):
            after = [*grosses[rate_id], *(line.total for line in correcting(rate_id))]
            assert _holds_in_both_roundings(after, percentage, target)
        elif percentage:
            assert not correcting(rate_id)
            assert any(note.startswith(f"VAT at {RATES[rate_id].name} could not") for note in ctx.notes)
        if correcting(rate_id) and percentage:
            amounts = ", ".join(str(line.total) for line in correcting(rate_id))
            assert any(
                note.startswith(f"VAT at {RATES[rate_id].name} made equal") and note.endswith(amounts)
                for note in ctx.notes
            )
    assert len(correcting(sb.SALES_21)) == 2
    (counter,) = correcting(sb.SALES_0)
    assert sum((line.total for line in corrections), D(0)) == 0
    assert any(f"balanced by {counter.total} at 0 %" in note for note in ctx.notes)
