"""Properties of the plan over orders generated the way WooCommerce computes them.

Every generated cart goes through the checkout simulator (WooCommerce's rounding, coupon and fee
rules), then through the plan, and the plan is created as a draft invoice in the fake Moneybird
under both VAT roundings. The fake's own arithmetic (app.sandbox, written apart from the plan's
model of Moneybird) then decides: Moneybird's total must equal the order total, every line must be
accepted, and the VAT per rate may differ from the shop's only by a bounded, recorded amount —
not at all with exact VAT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.booking.documents import sales_invoice_body
from app.invoicing.moneybird_arithmetic import (
    ROUNDING_MODES,
    Rounding,
    predicted_total,
    predicted_vat,
    vat_deviation,
)
from app.invoicing.plan import InvoicePlan, PlanOptions, PlanRefused, find_vat_correction, plan_invoice
from app.invoicing.reference import AdministrationReference
from app.moneybird.client import MoneybirdClient
from app.moneybird.models import ContactCreate
from app.moneybird.reference import load_reference
from app.sandbox.moneybird import MoneybirdSandbox, compute_totals, sandbox_transport
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
from tests.examples import examples

T = TypeVar("T")
NOW = datetime(2025, 6, 1, 10, tzinfo=UTC)
CENT = Decimal("0.01")
SETTINGS = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass(frozen=True)
class Booked:
    total: Decimal
    vat: dict[str, Decimal]  # tax rate id → tax amount, as Moneybird computed it


class FakeMoneybird:
    """One fake administration, driven from synchronous hypothesis tests on a private event loop."""

    def __init__(self) -> None:
        self.sandbox = MoneybirdSandbox()
        self._loop = asyncio.new_event_loop()
        self._client = MoneybirdClient(
            base_url="https://moneybird.test/api/v2",
            token=self.sandbox.token,
            administration_id=self.sandbox.administration_id,
            transport=sandbox_transport(self.sandbox),
        )
        self.reference: AdministrationReference = self._run(load_reference(self._client))
        contact = self._run(
            self._client.create_contact(ContactCreate(company_name="Klant", customer_id="p-1"))
        )
        self.contact_id = contact.id
        rate = self.sandbox.tax_rate_id
        # WooCommerce tax rate id → the Moneybird rate it must be booked at, looked up in the fake.
        self.expected_rate = {
            1: rate(21),
            2: rate(9),
            3: rate(0, name_contains="0% btw"),
            11: rate(19, country="DE"),
            21: rate(21, country="BE"),
        }
        self.reverse_charge = rate(0, name_contains="verlegd")
        self.export = rate(0, name_contains="buiten")

    def _run(self, awaitable: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(awaitable)

    def book(self, plan: InvoicePlan, rounding: Rounding) -> Booked:
        """Create the plan as a draft under `rounding` and read Moneybird's figures."""
        self.sandbox.rounding = rounding
        invoice = self._run(
            self._client.create_sales_invoice(sales_invoice_body(plan, contact_id=self.contact_id))
        )
        del self.sandbox.sales_invoices[invoice.id]  # keeps the fake small over hundreds of examples
        return Booked(
            total=invoice.total_price_incl_tax,
            vat={total.tax_rate_id: total.tax_amount for total in invoice.tax_totals},
        )

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.close()


@pytest.fixture(scope="module")
def moneybird() -> Iterator[FakeMoneybird]:
    fake = FakeMoneybird()
    yield fake
    fake.close()


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


def _plan_or_documented_refusal(
    order: Order, reference: AdministrationReference, *, exact_vat: bool
) -> InvoicePlan | None:
    refusal: PlanRefused | None = None
    try:
        return plan_invoice(order, reference=reference, options=PlanOptions(exact_vat=exact_vat))
    except PlanRefused as caught:
        refusal = caught
    # The one refusal generated carts may earn: only untaxed products, nothing charged, not exempt.
    assert refusal is not None
    assert not order.tax_lines
    assert "charged no VAT on any of its lines" in refusal.reason
    return None


def _shop_vat(order: Order, moneybird: FakeMoneybird) -> dict[str, Decimal]:
    expected: dict[str, Decimal] = {}
    for line in order.tax_lines:
        rate_id = moneybird.expected_rate[line.rate_id]
        expected[rate_id] = expected.get(rate_id, Decimal(0)) + line.tax_total + line.shipping_tax_total
    return expected


@SETTINGS
@given(cart=carts(), exact_vat=st.booleans(), rounded_cents=st.sampled_from([0, 0, 0, 1, -1, 2]))
def test_moneybirds_total_is_the_order_total_and_its_vat_the_shops(
    moneybird: FakeMoneybird, cart: dict[str, object], exact_vat: bool, rounded_cents: int
) -> None:
    document = build_order(**cart)  # type: ignore[arg-type]
    # WooCommerce set to round tax at subtotal level ends a cent or two away from its lines.
    total = Decimal(document["total"]) + rounded_cents * CENT
    # An order WooCommerce clamped at zero (a discount fee larger than the cart) has no rounding to add.
    if total >= 0 and Decimal(document["total"]) > 0:
        document["total"] = str(total)
    order = Order.model_validate(document)
    plan = _plan_or_documented_refusal(order, moneybird.reference, exact_vat=exact_vat)
    if plan is None:
        return
    for line in plan.lines:
        assert line.quantity > 0
        assert line.quantity == line.quantity.to_integral_value()

    if order.tax_lines:
        assert plan.shop_vat == _shop_vat(order, moneybird)
    else:
        untaxed = moneybird.reverse_charge if plan.treatment == "reverse_charge" else moneybird.export
        assert set(plan.shop_vat) == {untaxed}

    for mode in ROUNDING_MODES:
        booked = moneybird.book(plan, mode)  # the fake refuses a line without a sales rate or whole cents
        assert booked.total == order.total, mode
        # The plan's own model of Moneybird agrees with the fake (the dry run and the report use it).
        assert predicted_total(plan, mode) == booked.total, mode
        assert predicted_vat(plan, mode) == booked.vat, mode
        for rate_id in {*plan.shop_vat, *booked.vat}:
            difference = booked.vat.get(rate_id, Decimal(0)) - plan.shop_vat.get(rate_id, Decimal(0))
            assert vat_deviation(plan, mode).get(rate_id, Decimal(0)) == difference
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
    total_vat = _fake_vat(amounts, percentage, "per_rate")
    target = total_vat + Decimal(nudge) / 100
    shifts = find_vat_correction(amounts, percentage, target)
    assert shifts is not None
    modes_apart = _fake_vat(amounts, percentage, "per_line") - total_vat
    assert len(shifts) <= 2 * abs(modes_apart) / CENT + 3
    for mode in ROUNDING_MODES:
        assert _fake_vat([*amounts, *shifts], percentage, mode) == target, mode


def _fake_vat(grosses: list[Decimal], percentage: Decimal, rounding: Rounding) -> Decimal:
    """VAT of one-piece lines at one rate (prices incl. VAT), by the fake Moneybird's arithmetic."""
    details = [{"amount_decimal": "1", "price": str(gross), "tax_rate_id": "r"} for gross in grosses]
    totals = compute_totals(
        details, percentages={"r": percentage}, incl_tax=True, rounding=rounding, discount=Decimal(0)
    )
    return sum((tax for _, _, tax in totals.tax_totals), Decimal(0))
