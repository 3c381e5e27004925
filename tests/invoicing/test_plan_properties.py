"""Properties of the plan over orders generated the way WooCommerce computes them.

Every generated cart goes through the checkout simulator (WooCommerce's rounding, coupon and fee
rules), then through the plan. Whatever the cart, Moneybird's total must equal the order total
under both VAT roundings, every line must carry a sales tax rate, and the VAT per rate may differ
from the shop's only by a bounded, recorded amount (not at all with exact VAT).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, rate_totals
from app.invoicing.plan import InvoicePlan, PlanOptions, PlanRefused, find_vat_correction, plan_invoice
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from app.sandbox.woocommerce.cart import (
    DUTCH_SHOP_RATES,
    OSS_SHOP_RATES,
    CartItem,
    Coupon,
    Customer,
    Fee,
    ShippingMethod,
)
from app.sandbox.woocommerce.checkout import build_order
from app.woocommerce.models import Order

REFERENCE = sandbox_reference()
NOW = datetime(2025, 6, 1, 10, tzinfo=UTC)
CENT = Decimal("0.01")
# WooCommerce tax rate id → the Moneybird rate it must be booked at (independent of the plan's lookup).
EXPECTED_RATE = {1: sb.SALES_21, 2: sb.SALES_9, 3: sb.SALES_0, 11: sb.OSS_DE_19, 21: sb.OSS_BE_21}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cents = st.integers(min_value=0, max_value=30000).map(lambda c: Decimal(c) / 100)
percentages = st.sampled_from([Decimal(p) for p in ("5", "10", "12.5", "33", "50", "100")])


@st.composite
def carts(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["nl", "nl", "nl", "oss", "business", "export"]))
    country = {"nl": "NL", "oss": draw(st.sampled_from(["DE", "BE"])), "business": "DE", "export": "US"}[kind]
    classes = ["", "reduced-rate", "zero-rate"] if kind == "nl" else [""]
    items = draw(
        st.lists(
            st.builds(
                CartItem,
                name=st.just("Artikel"),
                price=cents,
                quantity=st.integers(min_value=1, max_value=9),
                tax_class=st.sampled_from(classes),
                taxable=st.sampled_from([True, True, True, True, False]),
            ),
            min_size=1,
            max_size=5,
        )
    )
    coupons = draw(
        st.lists(
            st.one_of(
                st.builds(
                    Coupon, code=st.just("procent"), discount_type=st.just("percent"), amount=percentages
                ),
                st.builds(Coupon, code=st.just("vast"), discount_type=st.just("fixed_cart"), amount=cents),
            ),
            max_size=2,
            unique_by=lambda c: c.code,
        )
    )
    shipping = draw(st.lists(st.builds(ShippingMethod, title=st.just("PostNL"), cost=cents), max_size=2))
    fees = draw(
        st.lists(
            st.builds(
                Fee,
                name=st.sampled_from(["Toeslag", "Kassakorting"]),
                amount=st.integers(min_value=-3000, max_value=1000).map(lambda c: Decimal(c) / 100),
                taxable=st.booleans(),
            ),
            max_size=2,
        )
    )
    customer = Customer(
        first_name="Klant",
        last_name="Test",
        email="klant@example.com",
        country=country,
        company="Firma GmbH" if kind == "business" else "",
        vat_number="DE123456789" if kind == "business" else "",
        vat_exempt=kind == "business",
    )
    return {
        "order_id": 4242,
        "customer": customer,
        "items": items,
        "coupons": coupons,
        "shipping": shipping,
        "fees": fees,
        "prices_include_tax": draw(st.booleans()),
        "tax_rates": OSS_SHOP_RATES if kind != "business" else DUTCH_SHOP_RATES,
        "created_at": NOW,
        "paid_at": NOW,
    }


def _plan_or_documented_refusal(order: Order, *, exact_vat: bool) -> InvoicePlan | None:
    refusal: PlanRefused | None = None
    try:
        return plan_invoice(order, reference=REFERENCE, options=PlanOptions(exact_vat=exact_vat))
    except PlanRefused as caught:
        refusal = caught
    # The one refusal generated carts may earn: only untaxed products, nothing charged, not exempt.
    assert refusal is not None
    assert not order.tax_lines
    assert "charged no VAT on any of its lines" in refusal.reason
    return None


def _shop_vat(order: Order) -> dict[str, Decimal]:
    expected: dict[str, Decimal] = {}
    for line in order.tax_lines:
        rate_id = EXPECTED_RATE[line.rate_id]
        expected[rate_id] = expected.get(rate_id, Decimal(0)) + line.tax_total + line.shipping_tax_total
    return expected


@SETTINGS
@given(cart=carts(), exact_vat=st.booleans())
def test_total_is_exact_and_vat_is_bounded_and_recorded(cart: dict[str, object], exact_vat: bool) -> None:
    order = Order.model_validate(build_order(**cart))  # type: ignore[arg-type]
    plan = _plan_or_documented_refusal(order, exact_vat=exact_vat)
    if plan is None:
        return
    assert plan.lines_total == order.total
    for mode in ROUNDING_MODES:
        assert plan.predicted_total(mode) == order.total, mode

    sales_rates = {rate.id for rate in REFERENCE.sales_tax_rates()}
    for line in plan.lines:
        assert line.tax_rate_id in sales_rates
        assert line.price == line.price.quantize(CENT)
        assert line.quantity > 0
        assert line.quantity == line.quantity.to_integral_value()

    if order.tax_lines:
        assert plan.shop_vat == _shop_vat(order)
    else:
        assert set(plan.shop_vat) == {sb.REVERSE_CHARGE if plan.treatment == "reverse_charge" else sb.EXPORT}

    for mode in ROUNDING_MODES:
        deviation = plan.vat_deviation(mode)
        predicted = plan.predicted_vat(mode)
        for rate_id, difference in deviation.items():
            assert predicted.get(rate_id, Decimal(0)) - plan.shop_vat.get(rate_id, Decimal(0)) == difference
            if exact_vat:
                assert difference == 0, (mode, rate_id)
            else:
                lines_at_rate = sum(1 for line in plan.lines if line.tax_rate_id == rate_id)
                assert abs(difference) <= CENT * lines_at_rate, (mode, rate_id, difference)


@SETTINGS
@given(
    grosses=st.lists(st.integers(min_value=-20000, max_value=50000), min_size=1, max_size=8),
    percentage=st.sampled_from([Decimal(p) for p in ("21", "9", "19", "20", "5.5", "2.1")]),
    nudge=st.integers(min_value=-5, max_value=5),
)
def test_vat_correction_holds_under_both_roundings(
    grosses: list[int], percentage: Decimal, nudge: int
) -> None:
    amounts = [Decimal(g) / 100 for g in grosses]
    total_vat = rate_totals(amounts, percentage, rounding="per_rate", prices_are_incl_tax=True)[1]
    target = total_vat + Decimal(nudge) / 100
    shifts = find_vat_correction(amounts, percentage, target)
    assert shifts is not None
    modes_apart = (
        rate_totals(amounts, percentage, rounding="per_line", prices_are_incl_tax=True)[1] - total_vat
    )
    assert len(shifts) <= 2 * abs(modes_apart) / CENT + 3
    for mode in ROUNDING_MODES:
        assert (
            rate_totals([*amounts, *shifts], percentage, rounding=mode, prices_are_incl_tax=True)[1] == target
        )
