"""VAT treatment: domestic, OSS, reverse charge, export, and refusals that name the fix."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, predicted_total, predicted_vat
from app.invoicing.plan import InvoicePlan, PlanOptions, PlanRefused, plan_invoice
from app.invoicing.reference import AdministrationReference, TaxRate
from app.invoicing.vat import tax_line_country
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from app.sandbox.woocommerce.cart import OSS_SHOP_RATES, CartItem, Customer, Fee, ShippingMethod, WooTaxRate
from app.sandbox.woocommerce.checkout import build_order
from app.woocommerce.models import Order, TaxLine
from tests.invoicing.reference_carts import order

NOW = datetime(2025, 6, 1, 10, tzinfo=UTC)
REFERENCE = sandbox_reference()


def _order(country: str = "NL", *, items: list[CartItem] | None = None, **kwargs: Any) -> Order:
    customer_fields: dict[str, Any] = {
        "first_name": "Eva",
        "last_name": "Koch",
        "email": "eva@example.com",
        "country": country,
    }
    customer_fields.update(kwargs.pop("customer", {}))
    doc = build_order(
        order_id=kwargs.pop("order_id", 7001),
        customer=Customer(**customer_fields),
        items=items
        or [CartItem("Lamp", Decimal("49.95")), CartItem("Boek", Decimal("20.00"), tax_class="reduced-rate")],
        shipping=[ShippingMethod("DHL", Decimal("6.95"))],
        tax_rates=kwargs.pop("tax_rates", OSS_SHOP_RATES),
        created_at=NOW,
        paid_at=NOW,
        **kwargs,
    )
    return Order.model_validate(doc)


def _plan(order_: Order, reference: AdministrationReference = REFERENCE, **options: Any) -> InvoicePlan:
    return plan_invoice(order_, reference=reference, options=PlanOptions(**options))


def _refusal(order_: Order, reference: AdministrationReference = REFERENCE, **options: Any) -> PlanRefused:
    with pytest.raises(PlanRefused) as caught:
        _plan(order_, reference, **options)
    return caught.value


def _without(*rate_ids: str) -> AdministrationReference:
    return replace(REFERENCE, tax_rates=tuple(r for r in REFERENCE.tax_rates if r.id not in rate_ids))


def test_domestic_rates_map_by_percentage_to_sales_rates() -> None:
    plan = _plan(_order())
    assert plan.treatment == "domestic"
    assert [line.tax_rate_id for line in plan.lines] == [sb.SALES_21, sb.SALES_9, sb.SALES_21]


def test_purchase_rates_are_never_used() -> None:
    # Without the 21 % sales rate, the 21 % purchase rate is there, but must not be picked.
    refusal = _refusal(_order(), _without(sb.SALES_21))
    assert "no active sales-invoice tax rate for the 21 % rate" in str(refusal)
    assert 'MONEYBIRD_TAX_RATES={"21": "<Moneybird tax rate id>"}' in str(refusal)


def test_oss_consumer_is_booked_at_the_rate_for_their_country() -> None:
    plan = _plan(_order("DE", items=[CartItem("Lamp", Decimal("49.95"))]))
    assert plan.treatment == "oss"
    assert {line.tax_rate_id for line in plan.lines} == {sb.OSS_DE_19}
    # 49.95 × 19 % = 9.4905 → 9.49; 6.95 × 19 % = 1.3205 → 1.32.
    assert plan.shop_vat == {sb.OSS_DE_19: Decimal("10.81")}
    for mode in ROUNDING_MODES:
        assert predicted_vat(plan, mode) == {sb.OSS_DE_19: Decimal("10.81")}


def test_oss_rate_missing_in_moneybird_is_refused_with_the_key_to_set() -> None:
    refusal = _refusal(_order("DE"))  # the book is 7 % in Germany; the administration has no DE 7 % rate
    message = str(refusal)
    assert message.startswith("Order #7001 was not booked:")
    assert "7 % rate for consumers in DE (OSS)" in message
    assert 'MONEYBIRD_TAX_RATES={"DE:7": "<Moneybird tax rate id>"}' in message


def test_override_picks_the_rate_and_must_match_the_percentage() -> None:
    de_reduced = TaxRate("468139513999999999", "7% DE (OSS)", Decimal("7.0"), "sales_invoice", country="DE")
    reference = replace(REFERENCE, tax_rates=(*REFERENCE.tax_rates, de_reduced))
    plan = _plan(_order("DE"), reference, tax_rate_overrides={"DE:7": de_reduced.id})
    assert de_reduced.id in {line.tax_rate_id for line in plan.lines}
    wrong = _refusal(_order("DE"), reference, tax_rate_overrides={"DE:7": sb.OSS_DE_19})
    assert "which is 19 % instead of 7 %" in str(wrong)


def test_override_naming_a_purchase_rate_is_refused() -> None:
    refusal = _refusal(_order(), tax_rate_overrides={"21": sb.PURCHASE_21})
    assert f"names tax rate {sb.PURCHASE_21} for '21'" in str(refusal)


def test_reverse_charge_for_an_eu_business_with_a_vat_number() -> None:
    plan = _plan(order("d"))
    assert plan.treatment == "reverse_charge"
    assert plan.shop_vat == {sb.REVERSE_CHARGE: Decimal(0)}
    refusal = _refusal(order("d"), _without(sb.REVERSE_CHARGE))
    assert 'MONEYBIRD_TAX_RATES={"reverse_charge": "<Moneybird tax rate id>"}' in str(refusal)


def test_vat_number_is_read_from_other_plugins_meta_keys() -> None:
    doc = order("d").model_dump()
    doc["meta_data"] = [
        {"key": "is_vat_exempt", "value": "yes"},
        {"key": "vat_number", "value": "be 0765.342.173"},
    ]
    plan = _plan(Order.model_validate(doc))
    assert plan.contact.tax_number == "BE0765342173"
    assert plan.treatment == "reverse_charge"
    refused = _refusal(Order.model_validate(doc), vat_number_meta_keys=("_billing_vat_number",))
    assert "gave no VAT number" in str(refused)


def test_export_outside_the_eu() -> None:
    plan = _plan(_order("US"))  # the shop has no US rates, so WooCommerce charged nothing
    assert plan.treatment == "export"
    assert {line.tax_rate_id for line in plan.lines} == {sb.EXPORT}


def test_export_without_an_export_rate_in_moneybird_names_the_rate_missing() -> None:
    refusal = _refusal(_order("US"), _without(sb.EXPORT))
    assert "export rate (0 % outside the EU)" in str(refusal)


def test_an_order_shipped_nowhere_to_a_customer_outside_the_eu_is_export() -> None:
    # A download: no shipping address, so where the customer lives decides.
    us = _order("US")
    digital = us.model_copy(update={"shipping": us.shipping.model_copy(update={"country": ""})})
    assert _plan(digital).treatment == "export"


@pytest.mark.parametrize(("country", "where"), [("NL", "in NL"), ("", "without a country")])
def test_an_order_without_vat_from_a_customer_not_marked_exempt_is_refused(country: str, where: str) -> None:
    untaxed = _order(items=[CartItem("Boek", Decimal("20.00"), taxable=False)])
    untaxed = untaxed.model_copy(update={"billing": untaxed.billing.model_copy(update={"country": country})})
    refusal = _refusal(untaxed)
    assert (refusal.reason, refusal.fix) == (
        "WooCommerce charged no VAT on any of its lines although the customer is not marked VAT exempt "
        f"(customer {where}): untaxed products only, or taxes switched off in WooCommerce",
        "check the products' tax status and WooCommerce → Settings → Tax, and book this order by hand",
    )


def test_exempt_consumer_inside_the_eu_is_refused_with_the_reason() -> None:
    refusal = _refusal(_order("FR", customer={"vat_exempt": True}))
    assert "WooCommerce charged no VAT on this order" in refusal.reason
    assert "gave no VAT number" in refusal.reason
    assert refusal.fix == (
        "check the order in WooCommerce (is the customer wrongly marked VAT exempt?) and book it by hand; "
        "if the VAT number sits under another meta key, add it to WOOCOMMERCE_VAT_NUMBER_META_KEYS"
    )


def test_dutch_business_marked_exempt_is_refused() -> None:
    refusal = _refusal(_order("NL", customer={"vat_exempt": True, "vat_number": "NL123456789B01"}))
    assert "reverse charge only applies to business customers in another EU country than NL" in str(refusal)


def test_several_zero_rates_are_told_apart_by_name_or_refused() -> None:
    zero_item = [CartItem("Krant", Decimal("3.00"), tax_class="zero-rate")]
    plan = _plan(_order(items=zero_item))
    assert plan.lines[0].tax_rate_id == sb.SALES_0
    twin = TaxRate("468139513888888888", "Nultarief", Decimal(0), "sales_invoice")
    refusal = _refusal(_order(items=zero_item), replace(REFERENCE, tax_rates=(*REFERENCE.tax_rates, twin)))
    assert "several Moneybird tax rates could be the 0 % rate" in str(refusal)
    assert f"'0% btw' ({sb.SALES_0}), 'Nultarief' ({twin.id})" in str(refusal)


def test_compound_tax_is_refused() -> None:
    compound = WooTaxRate(id=9, percent=Decimal(2), name="Extra", country="NL", priority=2, compound=True)
    more = WooTaxRate(id=10, percent=Decimal(1), name="Meer", country="NL", priority=3, compound=True)
    refusal = _refusal(_order(tax_rates=(*OSS_SHOP_RATES, compound, more)))
    assert (refusal.reason, refusal.fix) == (
        "WooCommerce charged compound tax (Extra, Meer); Moneybird books one tax rate per invoice line "
        "and cannot stack them",
        "book this order by hand",
    )


def test_stacked_taxes_on_one_line_are_refused() -> None:
    second = WooTaxRate(id=8, percent=Decimal(9), name="Toeslag", country="NL", priority=2)
    refusal = _refusal(
        _order(items=[CartItem("Lamp", Decimal("49.95"))], tax_rates=(*OSS_SHOP_RATES, second))
    )
    assert (refusal.reason, refusal.fix) == (
        "product 'Lamp' carries several taxes on the same amount (21% btw 10.4895, 9% btw 4.4955); "
        "Moneybird books one tax rate per invoice line",
        "book this order by hand",
    )


def test_negative_fee_over_two_rates_becomes_one_line_per_rate() -> None:
    discounted = _order(fees=[Fee("Kassakorting", Decimal("-10.00"))])
    plan = _plan(discounted)
    fee_lines = [(line.description, line.tax_rate_id) for line in plan.lines if line.kind == "fee"]
    assert fee_lines == [("Kassakorting (21% btw)", sb.SALES_21), ("Kassakorting (9% btw)", sb.SALES_9)]
    fee = discounted.fee_lines[0]
    assert sum(line.total for line in plan.lines if line.kind == "fee") == fee.total + fee.total_tax
    assert all(predicted_total(plan, mode) == discounted.total for mode in ROUNDING_MODES)


def test_unpaid_order_is_refused() -> None:
    refusal = _refusal(order("a").model_copy(update={"date_paid_gmt": None}))
    assert "not paid yet" in str(refusal)


def test_total_changed_outside_the_lines_is_refused_not_rounded() -> None:
    gift_card = order("a").model_copy(update={"total": Decimal("26.00")})
    refusal = _refusal(gift_card)
    assert "lines add up to 36.00 but the customer paid 26.00" in str(refusal)


@pytest.mark.parametrize("paid", ["35.50", "36.50", "35.95", "36.05"])
def test_more_than_a_cent_per_line_is_not_rounding(paid: str) -> None:
    # Order a is booked as three lines (two mugs split over 15.00 and 15.01, shipping): WooCommerce's
    # own rounding can move its total by at most a cent per line and one for the total.
    assert len(_plan(order("a")).lines) == 3
    refusal = _refusal(order("a").model_copy(update={"total": Decimal(paid)}))
    assert f"lines add up to 36.00 but the customer paid {paid}" in str(refusal)


@pytest.mark.parametrize("paid", ["35.96", "36.04"])
def test_up_to_a_cent_per_line_is_rounding(paid: str) -> None:
    plan = _plan(order("a").model_copy(update={"total": Decimal(paid)}))
    (rounding,) = [line for line in plan.lines if line.kind == "rounding"]
    assert rounding.price == Decimal(paid) - Decimal("36.00")
    assert plan.lines_total == Decimal(paid)


def test_a_cent_between_lines_and_total_becomes_a_visible_rounding_line() -> None:
    odd = order("a").model_copy(update={"total": Decimal("36.01")})
    plan = _plan(odd)
    rounding = [line for line in plan.lines if line.kind == "rounding"]
    assert [(line.price, line.tax_rate_id) for line in rounding] == [(Decimal("0.01"), sb.SALES_0)]
    assert all(predicted_total(plan, mode) == Decimal("36.01") for mode in ROUNDING_MODES)
    assert any("differs from its lines by 0.01" in note for note in plan.notes)
    # Without a 0 % rate in Moneybird, the rounding goes to the rate of the largest line.
    fallback = _plan(odd, _without(sb.SALES_0))
    assert [line.tax_rate_id for line in fallback.lines if line.kind == "rounding"] == [sb.SALES_21]


def test_configured_ledger_that_does_not_exist_is_refused() -> None:
    refusal = _refusal(order("a"), ledger_account_id="123")
    assert "MONEYBIRD_LEDGER_ACCOUNT_ID is 123" in str(refusal)


@pytest.mark.parametrize(
    ("country", "customer", "missing", "described", "key"),
    [
        ("US", {}, sb.EXPORT, "the export rate (0 % outside the EU)", "export"),
        (
            "DE",
            {"vat_exempt": True, "vat_number": "DE123456789"},
            sb.REVERSE_CHARGE,
            "the reverse-charge rate (btw verlegd, 0 %)",
            "reverse_charge",
        ),
    ],
)
def test_a_missing_zero_rate_is_named_in_the_bookkeepers_words(
    country: str, customer: dict[str, Any], missing: str, described: str, key: str
) -> None:
    refusal = _refusal(_order(country, customer=customer), _without(missing))
    assert str(refusal) == (
        f"Order #7001 was not booked: Moneybird has no active sales-invoice tax rate for {described}. "
        "To fix: create that tax rate in Moneybird, or set "
        f'MONEYBIRD_TAX_RATES={{"{key}": "<Moneybird tax rate id>"}}.'
    )


def test_an_override_naming_no_rate_is_refused_with_what_to_set() -> None:
    assert str(_refusal(_order(), tax_rate_overrides={"21": "1"})) == (
        "Order #7001 was not booked: MONEYBIRD_TAX_RATES names tax rate 1 for '21', but Moneybird has no "
        "active sales-invoice tax rate with that id. To fix: set "
        'MONEYBIRD_TAX_RATES={"21": "<Moneybird tax rate id>"} with the id of an active '
        "sales-invoice tax rate."
    )


def test_vat_charged_at_a_country_outside_the_eu_is_foreign_not_oss() -> None:
    # A shop registered for Swiss VAT charges a Swiss customer 8.1 %: not an EU OSS sale.
    swiss = WooTaxRate(20, Decimal("8.1"), "MWST", country="CH")
    swiss_rate = TaxRate("468139513900000001", "8,1% MWST", Decimal("8.1"), "sales_invoice", country="CH")
    reference = replace(REFERENCE, tax_rates=(*REFERENCE.tax_rates, swiss_rate))
    order_ = _order("CH", items=[CartItem("Lamp", Decimal("49.95"))], tax_rates=(*OSS_SHOP_RATES, swiss))
    plan = _plan(order_, reference)
    assert plan.treatment == "foreign"
    assert {line.tax_rate_id for line in plan.lines} == {swiss_rate.id}


@pytest.mark.parametrize(
    ("rate_code", "country"),
    [
        ("DE-MWST-1", "DE"),  # a rate for Germany
        ("NL-BTW LAAG-1", "NL"),
        ("BTW-1", None),  # a rate for every country: no country part
        ("EU-1", None),  # …even when its name is two capitals
        ("BTW-LAAG-1", None),  # …or has a dash of its own
        ("btw-laag-1", None),
    ],
)
def test_the_country_of_a_tax_rate_is_read_from_its_code_only_when_it_has_one(
    rate_code: str, country: str | None
) -> None:
    line = TaxLine(id=1, rate_id=1, rate_code=rate_code)
    assert tax_line_country(line) == country
