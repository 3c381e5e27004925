"""Every invoice checked against WooCommerce's own numbers: the order total, and VAT per rate
from the order's `tax_lines` (re-read from the shop, never taken from woobird's plan)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.realshop.orders import get_order
from tests.realshop.stack import Stack

RateKey = tuple[str, Decimal]  # (country or "", percentage)


@dataclass(frozen=True)
class Booked:
    version: str
    kind: str
    order_id: int
    shop_total: Decimal
    invoice_total: Decimal
    shop_vat: dict[RateKey, Decimal]
    moneybird_vat: dict[RateKey, Decimal]


BOOKED: list[Booked] = []


def shop_vat(order: dict[str, Any]) -> dict[RateKey, Decimal]:
    """VAT per rate as WooCommerce charged it: tax_lines' tax_total + shipping_tax_total."""
    vat: dict[RateKey, Decimal] = {}
    for line in order["tax_lines"]:
        code = line["rate_code"].split("-")
        key = ("" if code[0] == "NL" else code[0], Decimal(str(line["rate_percent"])))
        vat[key] = vat.get(key, Decimal(0)) + Decimal(line["tax_total"]) + Decimal(line["shipping_tax_total"])
    return {key: amount for key, amount in vat.items() if amount}


def moneybird_vat(stack: Stack, invoice: dict[str, Any]) -> dict[RateKey, Decimal]:
    rates = stack.moneybird.administration().tax_rates
    vat: dict[RateKey, Decimal] = {}
    for total in invoice["tax_totals"]:
        rate = rates[str(total["tax_rate_id"])]
        key = (rate.record["country"] or "", rate.percentage)
        vat[key] = vat.get(key, Decimal(0)) + Decimal(total["tax_amount"])
    return {key: amount for key, amount in vat.items() if amount}


def invoice_rate_names(stack: Stack, invoice: dict[str, Any]) -> set[str]:
    rates = stack.moneybird.administration().tax_rates
    return {rates[str(detail["tax_rate_id"])].record["name"] for detail in invoice["details"]}


def check_booked(stack: Stack, order: dict[str, Any], *, kind: str) -> dict[str, Any]:
    """The order's invoice total is what the customer paid and its VAT per rate what the shop charged."""
    invoice = stack.invoice_for(order)
    truth = get_order(stack.shop, order["id"])
    booked = Booked(
        version=stack.shop.woocommerce_version,
        kind=kind,
        order_id=order["id"],
        shop_total=Decimal(truth["total"]),
        invoice_total=Decimal(invoice["total_price_incl_tax"]),
        shop_vat=shop_vat(truth),
        moneybird_vat=moneybird_vat(stack, invoice),
    )
    BOOKED.append(booked)
    assert booked.invoice_total == booked.shop_total, (
        f"{kind}: invoice {booked.invoice_total} ≠ order {booked.shop_total}"
    )
    assert booked.moneybird_vat.keys() == booked.shop_vat.keys(), f"{kind}: VAT at other rates {booked}"
    for key, amount in booked.shop_vat.items():
        assert abs(booked.moneybird_vat[key] - amount) <= Decimal("0.01"), (
            f"{kind}: VAT at {key} differs: {booked}"
        )
    return invoice


def _rates(vat: dict[RateKey, Decimal]) -> str:
    return (
        ", ".join(
            f"{country + ' ' if country else ''}{pct.normalize():f} %: {amount:.2f}"
            for (country, pct), amount in sorted(vat.items())
        )
        or "—"
    )


def report_table() -> list[str]:
    columns = ["WooCommerce", "order kind", "shop total", "invoice total", "VAT per rate, shop", "Moneybird"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(BOOKED, key=lambda row: (row.version, row.order_id)):
        cells = [row.version, row.kind, f"{row.shop_total:.2f}", f"{row.invoice_total:.2f}"]
        cells += [_rates(row.shop_vat), _rates(row.moneybird_vat)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
