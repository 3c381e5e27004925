"""The plan at its edges: the shop's day without a time-zone database, refusals as the bookkeeper
reads them, settings reaching the plan, linked products, and an order WooCommerce clamped at zero."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from app.invoicing import plan as plan_module
from app.invoicing.moneybird_arithmetic import vat_deviation
from app.invoicing.plan import PlanOptions, PlanRefused, local_date, plan_invoice
from app.invoicing.reference import AdministrationReference, LedgerAccount, Workflow
from app.plan_options import plan_options
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from app.sandbox.woocommerce.cart import CartItem, Fee
from app.sandbox.woocommerce.checkout import build_order
from app.settings import load_settings
from app.woocommerce.models import Order
from tests.invoicing.reference_carts import CARTS, order

REFERENCE = sandbox_reference()
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _no_time_zone_database(name: str) -> ZoneInfo:
    raise ZoneInfoNotFoundError(name)


def test_without_a_time_zone_database_the_amsterdam_day_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    # Late evening UTC is the next day in summer and the same day in winter: every day of four
    # years at 22:30 and 23:30 UTC finds a summer time that starts or ends a day early or late.
    moments = [
        datetime(2024, 1, 1, hour, 30, tzinfo=UTC) + timedelta(days=day)
        for day in range(4 * 366)
        for hour in (0, 21, 22, 23)
    ]
    expected = [moment.astimezone(AMSTERDAM).date() for moment in moments]
    monkeypatch.setattr(plan_module, "ZoneInfo", _no_time_zone_database)
    assert [local_date(moment, "Europe/Amsterdam") for moment in moments] == expected


def test_without_a_time_zone_database_another_zone_is_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "ZoneInfo", _no_time_zone_database)
    with pytest.raises(ZoneInfoNotFoundError):
        local_date(datetime(2026, 7, 1, 22, 30, tzinfo=UTC), "Europe/Brussels")


def test_the_payment_day_is_the_shops_day() -> None:
    # 22:30 UTC on 30 June is 1 July in Amsterdam: the invoice and its payment are July's.
    paid = order("a").model_copy(update={"date_paid_gmt": datetime(2026, 6, 30, 22, 30, tzinfo=UTC)})
    plan = plan_invoice(paid, reference=REFERENCE, options=PlanOptions())
    assert (plan.invoice_date, plan.payment_date) == (date(2026, 7, 1), date(2026, 7, 1))


def _refusal(order_: Order, **options: object) -> str:
    with pytest.raises(PlanRefused) as caught:
        plan_invoice(order_, reference=REFERENCE, options=PlanOptions(**options))  # type: ignore[arg-type]
    assert caught.value.order_number == order_.display_number
    return str(caught.value)


def test_an_unpaid_order_is_refused_with_where_to_mark_it_paid() -> None:
    unpaid = order("a").model_copy(update={"date_paid_gmt": None, "number": "2026-0042"})
    assert _refusal(unpaid) == (
        "Order #2026-0042 was not booked: WooCommerce has no payment date for it (date_paid), so it is "
        "not paid yet. To fix: mark the order paid in WooCommerce (bank transfer and cash on delivery "
        "orders get a payment date when they are set to processing or completed)."
    )


def test_a_total_with_fractions_of_cents_is_refused_with_the_setting_that_fixes_it() -> None:
    odd = order("a").model_copy(update={"total": Decimal("36.255")})
    assert _refusal(odd).endswith(
        "its total 36.255 is not a whole number of cents, and Moneybird prices have two decimals. "
        "To fix: set WooCommerce's number of decimals to 2 (WooCommerce → Settings → General)."
    )


def test_an_unknown_ledger_account_is_refused_naming_the_setting() -> None:
    assert _refusal(order("a"), ledger_account_id="1").endswith(
        "MONEYBIRD_LEDGER_ACCOUNT_ID is 1, but Moneybird has no revenue ledger account with that id that "
        "allows sales invoices. To fix: set MONEYBIRD_LEDGER_ACCOUNT_ID to the id of a revenue ledger "
        "account, or leave it empty for Moneybird's default."
    )


def test_a_document_style_is_taken_as_configured_when_moneybird_listed_none() -> None:
    bare = replace(REFERENCE, document_styles=())
    plan = plan_invoice(order("a"), reference=bare, options=PlanOptions(document_style_id="77"))
    assert plan.document_style_id == "77"


def test_every_plan_setting_reaches_the_plan_options() -> None:
    settings = load_settings(
        _env_file=None,
        moneybird_tax_rates={"NL:21": "11"},
        moneybird_ledger_account_id="21",
        moneybird_shipping_ledger_account_id="22",
        moneybird_workflow_id="23",
        moneybird_document_style_id="24",
        invoice_exact_vat=True,
        woocommerce_vat_number_meta_keys=["_vat"],
    )
    assert plan_options(settings) == PlanOptions(
        tax_rate_overrides={"NL:21": "11"},
        ledger_account_id="21",
        shipping_ledger_account_id="22",
        workflow_id="23",
        document_style_id="24",
        exact_vat=True,
        vat_number_meta_keys=("_vat",),
    )


def test_a_product_linked_by_sku_carries_its_moneybird_product_on_every_split_line() -> None:
    plan = plan_invoice(order("a"), reference=REFERENCE, options=PlanOptions(products={"MOK-DB-01": "900"}))
    assert [(line.kind, line.product_id) for line in plan.lines] == [
        ("product", "900"),
        ("product", "900"),
        ("shipping", None),
    ]


def test_an_order_woocommerce_clamped_at_zero_is_booked_at_zero() -> None:
    # A cart discount fee ten cents larger than the cart: WooCommerce charges 0.00, not -0.10.
    cart = dict(CARTS["a"]) | {"fees": [Fee("Kassakorting", Decimal("-40.00"))]}
    document = build_order(**cart)
    (fee,) = document["fee_lines"]
    fee |= {"total": "-29.83", "total_tax": "-6.27", "taxes": [{"id": 1, "total": "-6.27", "subtotal": ""}]}
    clamped = Order.model_validate(document)
    assert clamped.total == 0
    plan = plan_invoice(clamped, reference=REFERENCE, options=PlanOptions())
    assert plan.lines_total == 0
    assert [(line.kind, line.price) for line in plan.lines][-2:] == [
        ("fee", Decimal("-36.10")),
        ("rounding", Decimal("0.10")),
    ]


def test_an_order_paid_in_full_by_something_outside_its_lines_is_refused_not_rounded() -> None:
    # A gift card (a plugin) took a postcard's 0.61 to 0.00: not WooCommerce clamping a discount.
    postcard = CartItem(name="Ansichtkaart", price=Decimal("0.50"), quantity=1)
    cheap = Order.model_validate(build_order(**(dict(CARTS["a"]) | {"items": [postcard], "shipping": []})))
    assert 0 < plan_invoice(cheap, reference=REFERENCE, options=PlanOptions()).lines_total < 1

    refusal = _refusal(cheap.model_copy(update={"total": Decimal("0")}))

    assert "but the customer paid 0" in refusal
    assert "that is more than rounding" in refusal


def test_a_guest_without_an_e_mail_address_is_planned_without_one() -> None:
    document = build_order(**CARTS["a"])
    document["billing"]["email"] = None
    plan = plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())
    assert plan.contact.email == ""
    assert plan.contact.customer_id == f"woo-order-{document['id']}"


def test_a_quantity_in_fractions_is_one_line_with_the_quantity_in_words() -> None:
    # A weighed product (1.5 kg): Moneybird gets one line at the line's price, the quantity in its text.
    document = build_order(**CARTS["a"])
    document["line_items"][0]["quantity"] = "1.5"
    plan = plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())
    assert [
        (line.description, line.quantity, line.price) for line in plan.lines if line.kind == "product"
    ] == [("1.50 × Koffiemok Delfts Blauw (MOK-DB-01)", Decimal(1), Decimal("30.01"))]


@pytest.mark.parametrize(
    ("name", "described"),
    [
        ("T-shirt", "T-shirt – Rood (TS-R)"),
        ("T-shirt - Rood", "T-shirt - Rood (TS-R)"),  # WooCommerce put the colour in the name already
    ],
)
def test_a_variation_names_its_attributes_once(name: str, described: str) -> None:
    document = build_order(**CARTS["a"])
    document["line_items"][0] |= {
        "name": name,
        "sku": "TS-R",
        "variation_id": 4,
        "meta_data": [{"id": 1, "key": "pa_kleur", "value": "Rood"}],
    }
    plan = plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())
    assert {line.description for line in plan.lines if line.kind == "product"} == {described}


def test_vat_the_shop_charged_at_a_rate_no_line_carries_shows_whole_as_a_deviation() -> None:
    plan = plan_invoice(order("a"), reference=REFERENCE, options=PlanOptions())
    nine = next(
        rate for rate in REFERENCE.tax_rates if rate.percentage == 9 and rate.tax_rate_type == "sales_invoice"
    )
    odd = replace(plan, shop_vat={**plan.shop_vat, nine.id: Decimal("0.50")})
    for rounding in ("per_line", "per_rate"):
        assert vat_deviation(odd, rounding)[nine.id] == Decimal("-0.50")


def test_a_total_changed_outside_the_lines_is_refused_under_the_shops_order_number() -> None:
    changed = order("a").model_copy(update={"total": order("a").total - 5, "number": "2026-0043"})
    assert _refusal(changed).startswith(
        "Order #2026-0043 was not booked: its lines add up to 36.00 but the customer paid 31.00"
    )


def _flows(*flows: tuple[str, str, bool, bool]) -> AdministrationReference:
    return replace(
        REFERENCE,
        workflows=tuple(
            Workflow(i, f"Flow {i}", kind, default=default, active=active)
            for i, kind, active, default in flows
        ),
    )


def test_the_default_workflow_is_the_active_default_invoice_workflow() -> None:
    reference = _flows(
        ("61", "EstimateWorkflow", True, True),
        ("62", "InvoiceWorkflow", False, True),
        ("63", "InvoiceWorkflow", True, True),
    )
    assert plan_invoice(order("a"), reference=reference, options=PlanOptions()).workflow_id == "63"
    assert plan_invoice(order("a"), reference=_flows(), options=PlanOptions()).workflow_id is None


def test_a_configured_workflow_is_checked_against_moneybirds_when_they_are_known() -> None:
    assert (
        plan_invoice(order("a"), reference=_flows(), options=PlanOptions(workflow_id="64")).workflow_id
        == "64"
    )
    known = _flows(("61", "EstimateWorkflow", True, True), ("63", "InvoiceWorkflow", True, True))
    assert (
        plan_invoice(order("a"), reference=known, options=PlanOptions(workflow_id="63")).workflow_id == "63"
    )
    with pytest.raises(PlanRefused) as caught:
        plan_invoice(order("a"), reference=known, options=PlanOptions(workflow_id="61"))
    assert caught.value.order_number == order("a").display_number
    assert str(caught.value).endswith(
        "MONEYBIRD_WORKFLOW_ID is 61, but Moneybird has no active invoice workflow with that id. To fix: set "
        "MONEYBIRD_WORKFLOW_ID to an invoice workflow's id, or leave it empty for the default."
    )


def test_a_guests_contact_id_stays_what_earlier_versions_booked_under() -> None:
    # Moneybird contacts are found again by it: a different id for the same guest is a second contact.
    document = build_order(**CARTS["a"])
    document["customer_id"] = 0
    document["billing"]["email"] = " Anna.de.Vries@Example.NL "
    plan = plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())
    assert (
        plan.contact.customer_id == "woo-guest-830fd0ef2c33"
    )  # sha256 of the address in lower case, 12 digits


def test_the_contact_has_the_country_code_in_capitals_and_no_invented_vat_number() -> None:
    document = build_order(**CARTS["a"])
    document["billing"]["country"] = "nl"
    plan = plan_invoice(Order.model_validate(document), reference=REFERENCE, options=PlanOptions())
    assert (plan.contact.country, plan.contact.tax_number) == ("NL", "")


def test_discounts_are_booked_on_the_product_ledger_shipping_on_the_other() -> None:
    plan = plan_invoice(
        order("c"),
        reference=REFERENCE,
        options=PlanOptions(
            ledger_account_id=sb.REVENUE, shipping_ledger_account_id=sb.UNCATEGORISED_REVENUE
        ),
    )
    ledgers = {line.kind: line.ledger_account_id for line in plan.lines}
    assert ledgers["discount"] == ledgers["product"] == sb.REVENUE
    assert ledgers["shipping"] == sb.UNCATEGORISED_REVENUE


def test_a_refusal_without_an_order_number_names_the_order_id() -> None:
    assert str(PlanRefused(7, "a reason", "a fix")) == "Order #7 was not booked: a reason. To fix: a fix."


def test_only_revenue_accounts_that_take_sales_invoices_are_offered() -> None:
    accounts = (
        LedgerAccount("1", "Omzet", "revenue"),
        LedgerAccount("2", "Omzet inkoop", "revenue", allowed_document_types=("purchase_invoice",)),
        LedgerAccount("3", "Omzet verkoop", "revenue", allowed_document_types=("sales_invoice",)),
        LedgerAccount("4", "Kas", "cash"),
    )
    reference = replace(REFERENCE, ledger_accounts=accounts)
    assert [account.id for account in reference.revenue_accounts()] == ["1", "3"]


def test_a_tax_rate_is_found_by_its_id_and_an_unknown_id_finds_none() -> None:
    first, second = REFERENCE.tax_rates[:2]
    assert (REFERENCE.tax_rate(first.id), REFERENCE.tax_rate(second.id)) == (first, second)
    assert REFERENCE.tax_rate("1") is None


def _numbered(order_: Order, **update: object) -> Order:
    # The shop's order number differs from its id (a sequential-numbers plugin): refusals name the number.
    return order_.model_copy(update={"number": "2026-0050", **update})


def test_a_refusal_names_the_shops_order_number_whatever_refuses() -> None:
    no_style = replace(REFERENCE, workflows=())
    cases = [
        (_numbered(order("a")), {"ledger_account_id": "1"}, REFERENCE),
        (_numbered(order("a")), {"workflow_id": "1"}, REFERENCE),
        (_numbered(order("a")), {"document_style_id": "1"}, no_style),
        (_numbered(order("a"), total=Decimal("36.005")), {}, REFERENCE),
        (_numbered(order("a"), tax_lines=[]), {}, REFERENCE),  # a VAT refusal: charged none, not exempt
    ]
    for order_, options, reference in cases:
        with pytest.raises(PlanRefused) as caught:
            plan_invoice(order_, reference=reference, options=PlanOptions(**options))  # type: ignore[arg-type]
        assert str(caught.value).startswith("Order #2026-0050 was not booked: "), options


def test_an_unknown_document_style_is_refused_and_without_a_default_none_is_sent() -> None:
    assert _refusal(order("a"), document_style_id="1").endswith(
        "MONEYBIRD_DOCUMENT_STYLE_ID is 1, but Moneybird has no document style with that id. To fix: set "
        "MONEYBIRD_DOCUMENT_STYLE_ID to a document style's id, or leave it empty for the default."
    )
    known = REFERENCE.document_styles[0].id
    assert (
        plan_invoice(
            order("a"), reference=REFERENCE, options=PlanOptions(document_style_id=known)
        ).document_style_id
        == known
    )
    plain = replace(
        REFERENCE, document_styles=tuple(replace(s, default=False) for s in REFERENCE.document_styles)
    )
    assert plan_invoice(order("a"), reference=plain, options=PlanOptions()).document_style_id is None


def test_an_unknown_shipping_ledger_is_refused_naming_its_own_setting() -> None:
    assert _refusal(order("a"), shipping_ledger_account_id="1").endswith(
        "MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID is 1, but Moneybird has no revenue ledger account with that id "
        "that allows sales invoices. To fix: set MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID to the id of a revenue "
        "ledger account, or leave it empty for Moneybird's default."
    )


def test_a_changed_total_is_refused_with_what_to_check() -> None:
    assert _refusal(order("a").model_copy(update={"total": Decimal("31.00")})).endswith(
        "To fix: check the order for gift cards, store credit or plugins that change totals, and book it "
        "by hand."
    )
    # Paid nothing for lines worth 36.00: not an order WooCommerce clamped at zero, so refused too.
    assert "but the customer paid 0.00" in _refusal(order("a").model_copy(update={"total": Decimal("0.00")}))


def test_an_invoice_of_a_refunded_order_says_its_refunds_are_credited_apart() -> None:
    plan = plan_invoice(order("f"), reference=REFERENCE, options=PlanOptions())
    assert plan.notes[-1] == (
        "1 refund(s) totalling 42.29 are booked separately as credit invoices; this invoice is the "
        "original order"
    )


def test_a_tax_line_without_its_percentage_is_refused_with_the_woocommerce_version_that_sends_it() -> None:
    old = order("a")
    old = old.model_copy(update={"tax_lines": [old.tax_lines[0].model_copy(update={"rate_percent": None})]})
    assert _refusal(old).endswith(
        "WooCommerce did not say which percentage its tax rate 'BTW' is (the rate_percent field, sent since "
        "WooCommerce 3.7). To fix: update WooCommerce, or book this order by hand."
    )
