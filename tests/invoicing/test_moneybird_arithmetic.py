"""woobird's model of Moneybird's totals against the fake Moneybird's own, independent arithmetic,
and exact-VAT corrections that need more than one line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.invoicing.exact_vat import find_vat_correction
from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, Rounding, invoice_totals, rate_totals
from app.sandbox.moneybird import compute_totals

PERCENTAGES = {"21": Decimal(21), "9": Decimal(9), "0": Decimal(0)}
# (tax rate id, amount, price): prices a shop enters, with cents that round differently per line.
LINES = [
    ("21", "3", "0.35"),
    ("21", "1", "12.99"),
    *[("21", "1", "0.02")] * 3,  # 0.0042 VAT each: nothing per line, a cent per rate (excl. VAT)
    ("9", "2", "1.15"),
    ("9", "1", "0.05"),
    ("0", "1", "4.00"),
]


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("incl_tax", [True, False], ids=["incl", "excl"])
def test_totals_and_vat_per_rate_are_moneybirds(rounding: Rounding, incl_tax: bool) -> None:
    details = [
        {"tax_rate_id": rate, "amount_decimal": amount, "price": price} for rate, amount, price in LINES
    ]
    fake = compute_totals(
        details, percentages=PERCENTAGES, incl_tax=incl_tax, rounding=rounding, discount=Decimal(0)
    )
    total, vat = invoice_totals(
        ((rate, Decimal(amount) * Decimal(price)) for rate, amount, price in LINES),
        PERCENTAGES,
        rounding=rounding,
        prices_are_incl_tax=incl_tax,
    )
    assert total == fake.incl
    assert vat == {rate: tax for rate, _, tax in fake.tax_totals}


def _cents(*amounts: str) -> list[Decimal]:
    return [Decimal(a) for a in amounts]


# Lines at 21 % and a shop VAT a few cents off both of Moneybird's roundings (found by search):
# the two roundings disagree by so much that one correction line cannot satisfy both.
HARD = [
    (
        _cents("0.09", "28.51", "18.25", "10.91", "29.56", "9.38", "24.22", "4.19", "13.01", "1.26"),
        "24.24",
        2,
    ),
    (
        _cents(
            "12.07",
            "18.63",
            "28.78",
            "13.19",
            "20.34",
            "19.41",
            "4.68",
            "0.97",
            "12.78",
            "15.84",
            "14.07",
            "17.25",
        ),
        "30.91",
        3,
    ),
    (
        _cents("7.96", "20.17", "4.28", "27.28", "15.98", "12.13", "20.65", "20.48", "0.71", "13.33"),
        "24.77",
        4,
    ),
    (
        _cents("7.96", "20.17", "4.28", "27.28", "15.98", "12.13", "20.65", "20.48", "0.71", "13.33"),
        "24.82",
        5,
    ),
]


@pytest.mark.parametrize(("grosses", "target", "lines"), HARD, ids=[f"{n} lines" for *_, n in HARD])
def test_a_correction_needing_several_small_lines_is_found_and_holds_in_both_roundings(
    grosses: list[Decimal], target: str, lines: int
) -> None:
    shifts = find_vat_correction(grosses, Decimal(21), Decimal(target))
    assert shifts is not None
    assert len(shifts) == lines
    assert all(abs(shift) < 1 for shift in shifts)
    for mode in ROUNDING_MODES:
        assert rate_totals([*grosses, *shifts], Decimal(21), rounding=mode, prices_are_incl_tax=True)[
            1
        ] == Decimal(target)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_vat_of_exactly_half_a_cent_rounds_up_as_moneybird_does(rounding: Rounding) -> None:
    # 0.50 net at 21 % is 0.105 VAT: half up gives 0.11, where banker's rounding would give 0.10.
    fake = compute_totals(
        [{"tax_rate_id": "21", "amount_decimal": "1", "price": "0.50"}],
        percentages=PERCENTAGES,
        incl_tax=False,
        rounding=rounding,
        discount=Decimal(0),
    )
    assert rate_totals([Decimal("0.50")], Decimal(21), rounding=rounding, prices_are_incl_tax=False) == (
        fake.incl,
        Decimal("0.11"),
    )
