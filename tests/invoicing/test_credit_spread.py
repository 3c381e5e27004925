"""How an amount-only refund's cents are shared out over the order's rates (largest remainder):
the cents that rounding down leaves over go to the shares that lost the most, and only then to
the larger weight, then the first key."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.invoicing.refund_plan import spread_cents
from tests.examples import examples

CENT = Decimal("0.01")

amounts = st.integers(min_value=0, max_value=100_000).map(lambda cents: Decimal(cents) * CENT)
weights = st.dictionaries(
    st.sampled_from(["21", "9", "0", "DE:19", "BE:21", "FR:20"]),
    # Small whole weights, so that equal remainders (the ties) come up.
    st.integers(min_value=1, max_value=12).map(Decimal),
    min_size=1,
)


@settings(max_examples=examples(300), deadline=None)
@given(amount=amounts, shares=weights)
@example(amount=Decimal("0.01"), shares={"a": Decimal(1), "b": Decimal(2)})  # b lost 2/3 cent, a 1/3
@example(amount=Decimal("0.05"), shares={"a": Decimal("3.4"), "b": Decimal("1.6")})  # b lost more
@example(amount=Decimal("0.02"), shares={"a": Decimal(1), "b": Decimal(3)})  # both lost ½: b weighs more
# All three lose ⅓ of a cent (5.33, 13.33, 5.33): the cent goes to the weight of 5.
@example(amount=Decimal("0.24"), shares={"a": Decimal(2), "b": Decimal(5), "c": Decimal(2)})
def test_the_cents_left_over_go_to_the_shares_that_lost_the_most_in_rounding_down(
    amount: Decimal, shares: dict[str, Decimal]
) -> None:
    parts = spread_cents(amount, shares)
    whole = sum((Fraction(weight) for weight in shares.values()), Fraction(0))
    exact = {key: Fraction(amount / CENT) * Fraction(weight) / whole for key, weight in shares.items()}
    rounded_up = {key for key in parts if parts[key] / CENT > int(exact[key])}
    assert sum(parts.values(), Decimal(0)) == amount
    for key in parts:
        assert int(exact[key]) <= parts[key] / CENT <= int(exact[key]) + 1

    def lost(key: str) -> Fraction:
        return exact[key] - int(exact[key])

    for up in rounded_up:
        for down in set(parts) - rounded_up:
            # The one that got the cent must come first by (loss, weight, key).
            assert (lost(up), shares[up]) >= (lost(down), shares[down])
            if (lost(up), shares[up]) == (lost(down), shares[down]):
                assert up < down
