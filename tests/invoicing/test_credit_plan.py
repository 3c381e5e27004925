"""The credit invoice as the bookkeeper reads it: how its lines are worded and in what order, which
ledger account and workflow it takes, which refund lines count, how an amount-only refund is
weighed over the order's rates, and what a refusal says."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from app.invoicing.plan import PlanOptions
from app.invoicing.reference import AdministrationReference, TaxRate, Workflow
from app.invoicing.refund_plan import CreditPlan, CreditRefused, plan_credit
from app.sandbox.administration import SALES_9, SALES_21, sandbox_reference
from app.woocommerce.models import Order, Refund
from tests.invoicing.reference_carts import order_document

D = Decimal
REFERENCE = sandbox_reference()
# Order 1187 (cart b): a teapot at 21 %, three packs of tea at 9 %, shipping at 21 %.
MIXED = order_document("b")
# Order 1537 (cart f): tea towels, an apron and shipping, all at 21 %.
ONE_RATE = order_document("f")


def _credit(
    refund: dict[str, Any],
    document: dict[str, Any],
    *,
    reference: AdministrationReference = REFERENCE,
    **options: Any,
) -> CreditPlan:
    return plan_credit(
        Refund.model_validate({"id": 90} | refund),
        order=Order.model_validate(document),
        reference=reference,
        options=PlanOptions(**options),
    )


def _refusal(refund: dict[str, Any], document: dict[str, Any]) -> str:
    with pytest.raises(CreditRefused) as caught:
        _credit(refund, document)
    return str(caught.value)


def _line(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(line for line in document["line_items"] if line["name"] == name)


def _back(document: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    """The refund line that gives one order line back whole, as WooCommerce records it."""
    line = _line(document, name)
    return {
        "id": 91,
        "name": name,
        "quantity": -Decimal(line["quantity"]),
        "total": f"-{line['total']}",
        "total_tax": f"-{line['total_tax']}",
        "taxes": [{"id": tax["id"], "total": f"-{tax['total']}"} for tax in line["taxes"]],
        "meta_data": [{"key": "_refunded_item_id", "value": str(line["id"])}],
    } | changes


def _gross(*lines: dict[str, Any]) -> str:
    return str(-sum((D(line["total"]) + D(line["total_tax"]) for line in lines), D(0)))


# A twin of the 9 % rate whose Moneybird id sorts before the 21 % rate's.
LOW_ID_9 = TaxRate("1", "9% btw (laag id)", D(9), "sales_invoice")


@pytest.mark.parametrize("low_id", [False, True], ids=["sandbox ids", "9 % id first"])
def test_an_amount_only_refund_reads_as_a_refund_per_rate_the_higher_rate_first(low_id: bool) -> None:
    reference = replace(REFERENCE, tax_rates=(*REFERENCE.tax_rates, LOW_ID_9)) if low_id else REFERENCE
    overrides = {"9": LOW_ID_9.id} if low_id else {}
    plan = _credit(
        {"amount": "10.00"},
        MIXED,
        reference=reference,
        tax_rate_overrides=overrides,
        ledger_account_id="41",
        shipping_ledger_account_id="42",
    )
    nine = LOW_ID_9 if low_id else next(rate for rate in REFERENCE.tax_rates if rate.id == SALES_9)
    assert [(line.description, line.tax_rate_id, line.ledger_account_id) for line in plan.lines] == [
        ("Terugbetaling bestelling #1187 (21% btw)", SALES_21, "41"),
        (f"Terugbetaling bestelling #1187 ({nine.name})", nine.id, "41"),
    ]


def test_money_beyond_the_refunded_lines_reads_as_an_extra_refund() -> None:
    apron = _back(ONE_RATE, "Katoenen schort Olijfgroen")
    plan = _credit({"amount": str(D(_gross(apron)) + D("5.00")), "line_items": [apron]}, ONE_RATE)
    assert [line.description for line in plan.lines] == [
        "Retour: Katoenen schort Olijfgroen",
        "Aanvullende terugbetaling bestelling #1537 (21% btw)",
    ]


def test_a_rate_whose_share_of_the_spread_is_nothing_gets_no_line() -> None:
    # One cent over 35.94 at 21 % and 19.47 at 9 %: the cent goes to 21 %, 9 % gets nothing.
    plan = _credit({"amount": "0.01"}, MIXED)
    assert [(line.tax_rate_id, line.price) for line in plan.lines] == [(SALES_21, D("0.01"))]


def _cheap_order() -> dict[str, Any]:
    """Order 1537 with only a 0.80 postcard at 21 % (0.66 + 0.14 VAT)."""
    document = copy.deepcopy(ONE_RATE)
    card = _line(document, "Katoenen schort Olijfgroen") | {
        "name": "Ansichtkaart",
        "quantity": 1,
        "total": "0.66",
        "total_tax": "0.14",
        "taxes": [{"id": 1, "total": "0.1386", "subtotal": "0.1386"}],
    }
    document |= {"line_items": [card], "shipping_lines": [], "total": "0.80"}
    return document


def test_a_refund_under_a_euro_is_credited() -> None:
    cheap = _cheap_order()
    spread = _credit({"amount": "0.50"}, cheap)
    assert [(line.tax_rate_id, line.quantity, line.price) for line in spread.lines] == [
        (SALES_21, D(-1), D("0.50"))
    ]
    card = _back(cheap, "Ansichtkaart")
    returned = _credit({"amount": "0.80", "line_items": [card]}, cheap)
    assert [(line.description, line.quantity, line.price) for line in returned.lines] == [
        ("Retour: Ansichtkaart", D(-1), D("0.80"))
    ]


def test_a_refund_without_a_reason_has_an_empty_reason_and_the_currency_reads_in_capitals() -> None:
    plan = _credit({"amount": "1.00"}, ONE_RATE | {"currency": "eur"})
    assert (plan.reason, plan.currency) == ("", "EUR")


def test_an_order_without_any_taxed_amount_cannot_have_a_refund_spread_over_it() -> None:
    untaxed = copy.deepcopy(ONE_RATE)
    for line in [*untaxed["line_items"], *untaxed["shipping_lines"]]:
        line |= {"total_tax": "0.00", "taxes": [{"id": 1, "total": "0"}]}
    assert _refusal({"amount": "10.00"}, untaxed) == (
        "order 1537 has no taxed amount to spread a refund of 10.00 over; credit it by hand"
    )


def test_a_refund_smaller_than_its_lines_is_refused_saying_why() -> None:
    apron = _back(ONE_RATE, "Katoenen schort Olijfgroen")
    assert _refusal({"amount": "40.00", "line_items": [apron]}, ONE_RATE) == (
        "the lines of refund 90 add up to 42.29 but only 40.00 was refunded; which line the difference "
        "belongs to (and so its VAT) cannot be told — credit it by hand"
    )


def test_a_refund_of_an_order_with_compound_tax_is_refused_with_the_reason_and_the_fix() -> None:
    compound = copy.deepcopy(ONE_RATE)
    compound["tax_lines"][0]["compound"] = True
    assert _refusal({"amount": "10.00"}, compound) == (
        "WooCommerce charged compound tax (BTW); Moneybird books one tax rate per invoice line and "
        "cannot stack them; book this order by hand"
    )


def test_the_shops_vat_on_a_refund_includes_the_vat_on_refunded_shipping() -> None:
    apron = _back(ONE_RATE, "Katoenen schort Olijfgroen")
    shipping = {"id": 92, "method_title": "PostNL pakket", "total": "-4.95", "total_tax": "-1.04"}
    shipping["taxes"] = [{"id": 1, "total": "-1.04"}]
    tax = {
        "id": 93,
        "rate_id": 1,
        "rate_code": "NL-BTW-1",
        "tax_total": "-7.34",
        "shipping_tax_total": "-1.04",
    }
    refund = {
        "amount": _gross(apron, shipping),
        "line_items": [apron],
        "shipping_lines": [shipping],
        "tax_lines": [tax],
    }
    assert _credit(refund, ONE_RATE).shop_vat == {SALES_21: D("-8.38")}


def test_refund_lines_with_nothing_refunded_are_left_out() -> None:
    apron = _back(ONE_RATE, "Katoenen schort Olijfgroen")
    towels = _back(ONE_RATE, "Linnen theedoek Ecru", quantity=0, total="0.00", total_tax="0.00", taxes=[])
    plan = _credit({"amount": _gross(apron), "line_items": [towels, apron]}, ONE_RATE)
    assert [line.description for line in plan.lines] == ["Retour: Katoenen schort Olijfgroen"]


@pytest.mark.parametrize(
    ("shipping", "description"),
    [
        ({"method_title": "PostNL pakket", "method_id": "flat_rate"}, "Retour: Verzending: PostNL pakket"),
        ({"method_title": "", "method_id": "flat_rate"}, "Retour: Verzending: flat_rate"),
    ],
    ids=["titled", "untitled"],
)
def test_refunded_shipping_reads_as_its_method_without_a_count(
    shipping: dict[str, Any], description: str
) -> None:
    back = {"id": 92, "total": "-4.95", "total_tax": "-1.04", "taxes": [{"id": 1, "total": "-1.04"}]}
    plan = _credit({"amount": "5.99", "shipping_lines": [back | shipping]}, ONE_RATE)
    assert [line.description for line in plan.lines] == [description]


def test_a_refunded_fee_reads_as_its_name() -> None:
    document = copy.deepcopy(ONE_RATE)
    document["fee_lines"] = [
        {"id": 153709, "name": "Cadeauverpakking", "total": "2.00", "total_tax": "0.42"}
        | {"taxes": [{"id": 1, "total": "0.42"}]}
    ]
    fee = {"id": 94, "name": "Cadeauverpakking", "total": "-2.00", "total_tax": "-0.42"}
    fee["taxes"] = [{"id": 1, "total": "-0.42"}]
    plan = _credit({"amount": "2.42", "fee_lines": [fee]}, document)
    assert [line.description for line in plan.lines] == ["Retour: Cadeauverpakking"]


@pytest.mark.parametrize("pieces", ["0.5", "1.5"])
def test_part_of_a_piece_refunded_reads_with_its_count_in_words(pieces: str) -> None:
    # A shop selling by weight (a plug-in allows decimal quantities): the count stays visible.
    apron = _back(ONE_RATE, "Katoenen schort Olijfgroen", quantity=f"-{pieces}")
    plan = _credit({"amount": _gross(apron), "line_items": [apron]}, ONE_RATE)
    assert [line.description for line in plan.lines] == [f"Retour: {pieces} × Katoenen schort Olijfgroen"]


INVOICE_DEFAULT = Workflow("71", "Standaard", "InvoiceWorkflow", default=True)


@pytest.mark.parametrize(
    ("workflows", "expected"),
    [
        (
            (
                Workflow("72", "Anders", "InvoiceWorkflow"),
                Workflow("73", "Offerte", "EstimateWorkflow", default=True),
                Workflow("74", "Oud", "InvoiceWorkflow", default=True, active=False),
                INVOICE_DEFAULT,
            ),
            INVOICE_DEFAULT.id,
        ),
        ((Workflow("73", "Offerte", "EstimateWorkflow", default=True),), None),
    ],
    ids=["among others", "none"],
)
def test_a_credit_takes_the_active_default_invoice_workflow_or_leaves_it_to_moneybird(
    workflows: tuple[Workflow, ...], expected: str | None
) -> None:
    plan = _credit({"amount": "1.00"}, ONE_RATE, reference=replace(REFERENCE, workflows=workflows))
    assert plan.workflow_id == expected


def test_refunded_shipping_with_a_zero_tax_and_no_order_line_named_is_refused() -> None:
    # WooCommerce names the rate with a zero tax: that says nothing about which rate it was booked at.
    back = {"id": 92, "method_title": "PostNL pakket", "total": "-5.99", "total_tax": "0"}
    back["taxes"] = [{"id": 1, "total": "0"}]
    assert _refusal({"amount": "5.99", "shipping_lines": [back]}, ONE_RATE) == (
        "refunded shipping 'PostNL pakket' carries no VAT and names no order line; which rate it belongs "
        "to cannot be told — credit it by hand"
    )


def _with_tea(total: str, tax: str, *, first_untaxed: bool = False) -> dict[str, Any]:
    document = copy.deepcopy(MIXED)
    tea = _line(document, "Biologische Earl Grey 100 g")
    tea |= {"total": total, "total_tax": tax, "taxes": [{"id": 2, "total": tax}]}
    if first_untaxed:
        card = _line(document, "Theepot Porselein 1L") | {"id": 118700, "name": "Ansichtkaart"}
        card |= {"total": "0.80", "total_tax": "0.00", "taxes": []}
        document["line_items"].insert(0, card)
    return document


@pytest.mark.parametrize(
    ("document", "nine"),
    [
        (_with_tea("0.92", "0.08"), D("1.00")),  # the tea worth exactly a euro
        (_with_tea("11.11", "1.00"), D("12.11")),  # its VAT exactly a euro
        (_with_tea("17.86", "1.61", first_untaxed=True), D("19.47")),  # after an untaxed card
    ],
    ids=["a euro", "a euro of VAT", "after an untaxed line"],
)
def test_a_full_amount_only_refund_gives_back_what_each_rate_was_paid(
    document: dict[str, Any], nine: Decimal
) -> None:
    # Teapot 24.75 + 5.20 and shipping 4.95 + 1.04 at 21 %; the untaxed card has no rate to weigh.
    plan = _credit({"amount": str(D("35.94") + nine)}, document)
    assert plan.spread == {SALES_21: D("35.94"), SALES_9: nine}
