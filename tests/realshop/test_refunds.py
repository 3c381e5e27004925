"""Refunds made in the real shop's admin way, credited by the real processes: each credit invoice
is the amount WooCommerce refunded, with the VAT WooCommerce took back per rate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.realshop.checks import BOOKED, Booked, RateKey, check_booked, moneybird_vat
from tests.realshop.orders import place_order, refund, set_status
from tests.realshop.stack import Stack

pytestmark = pytest.mark.realshop


def _booked_order(stack: Stack, *, kind: str, include_tax: bool, **order: Any) -> dict[str, Any]:
    stack.shop.set_prices_include_tax(include_tax)
    completed = set_status(stack.shop, place_order(stack.shop, **order), "completed")
    check_booked(stack, completed, kind=kind)
    return completed


def _refund_vat(refund_document: dict[str, Any]) -> dict[RateKey, Decimal]:
    """VAT per rate WooCommerce took back (negative), from the refund's own tax lines."""
    vat: dict[RateKey, Decimal] = {}
    for line in refund_document["tax_lines"]:
        code = line["rate_code"].split("-")
        key = ("" if code[0] == "NL" else code[0], Decimal(str(line["rate_percent"])))
        vat[key] = vat.get(key, Decimal(0)) + Decimal(line["tax_total"]) + Decimal(line["shipping_tax_total"])
    return {key: amount for key, amount in vat.items() if amount}


def check_credited(
    stack: Stack, order: dict[str, Any], refund_document: dict[str, Any], *, kind: str
) -> None:
    credit = stack.credit_for(order, refund_document["id"])
    amount = Decimal(refund_document["amount"])
    booked = Booked(
        version=stack.shop.woocommerce_version,
        kind=f"refund: {kind}",
        order_id=order["id"],
        shop_total=-amount,
        invoice_total=Decimal(credit["total_price_incl_tax"]),
        shop_vat=_refund_vat(refund_document),
        moneybird_vat=moneybird_vat(stack, credit),
    )
    BOOKED.append(booked)
    assert booked.invoice_total == -amount
    if booked.shop_vat:  # an amount-only refund has no VAT of WooCommerce's own to compare with
        assert booked.moneybird_vat.keys() == booked.shop_vat.keys(), booked
        for key, vat in booked.shop_vat.items():
            assert abs(booked.moneybird_vat[key] - vat) <= Decimal("0.01"), booked


def test_a_line_refund_is_credited_at_the_lines_rate(stack: Stack) -> None:
    order = _booked_order(
        stack,
        kind="incl. VAT: 21 % and 9 % (refunded: the teapot)",
        include_tax=True,
        items=[("teapot", 1), ("tea", 3)],
        email="refund.line@example.com",
        shipping="flat_nl",
    )
    teapot = next(line for line in order["line_items"] if line["name"].startswith("Theepot"))
    refunded = refund(stack.shop, order, amount=Decimal("29.95"), lines={teapot["id"]: 1})
    check_credited(stack, order, refunded, kind="one 21 % line")


def test_a_shipping_refund_and_an_amount_only_refund_of_one_order(stack: Stack) -> None:
    order = _booked_order(
        stack,
        kind="excl. VAT: 21 % and 9 % (refunded: shipping, then €10)",
        include_tax=False,
        items=[("plaid", 1), ("cookbook", 1)],
        email="refund.shipping@example.com",
        shipping="flat_nl",
    )
    shipping = Decimal(order["shipping_total"]) + Decimal(order["shipping_tax"])
    first = refund(stack.shop, order, amount=shipping, shipping=True, reason="Verzendkosten terug")
    check_credited(stack, order, first, kind="shipping")
    second = refund(stack.shop, order, amount=Decimal("10.00"), reason="Coulance")
    check_credited(stack, order, second, kind="€10 amount only, spread over the rates")


def test_a_refunded_gift_voucher_at_0_percent_is_credited(stack: Stack) -> None:
    order = _booked_order(
        stack,
        kind="excl. VAT: 0 % voucher and 21 % (refunded: the voucher)",
        include_tax=False,
        items=[("voucher", 1), ("mug", 2)],
        email="refund.voucher@example.com",
        shipping="flat_nl",
    )
    voucher = next(line for line in order["line_items"] if line["name"] == "Cadeaubon")
    refunded = refund(stack.shop, order, amount=Decimal("25.00"), lines={voucher["id"]: 1})
    check_credited(stack, order, refunded, kind="the 0 % voucher")
