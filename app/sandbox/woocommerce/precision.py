"""How many decimals the fake shop's money has on the wire: the `dp` argument, and the version.

The shop stores order documents as WooCommerce 9.9 answered by default: totals with two decimals,
each rate's share of a line's tax (`taxes[].total`) raw, as WooCommerce stored it (`"5.208"`).
On the way out, as the real shop does (recorded from 9.9.5 and 10.0.2):

- money fields have `dp` decimals (2 unless the request says `?dp=6`);
- WooCommerce ≥ 10.0 also formats `taxes[].total` / `subtotal` with `dp` decimals — rounded to
  cents by default (`-0.685836` → `-0.69`), padded with `?dp=6` (`-0.10595` → `-0.105950`); 9.9
  sends them raw whatever `dp` says.

A simplification: a line's net `total` in a shop with prices incl. VAT is stored rounded here, so
`?dp=6` pads it (`16.080000`) where the real shop has its six decimals (`16.082569`).
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

DEFAULT_DP = 2
_ORDER_MONEY = (
    "discount_total",
    "discount_tax",
    "shipping_total",
    "shipping_tax",
    "cart_tax",
    "total",
    "total_tax",
)
_LINE_MONEY = ("subtotal", "subtotal_tax", "total", "total_tax")
_LINES = ("line_items", "shipping_lines", "fee_lines")
_TAX_LINE_MONEY = ("tax_total", "shipping_tax_total")


def rounds_line_taxes(version: str) -> bool:
    """WooCommerce 10.0 started formatting `taxes[]` with `dp` decimals."""
    major = version.split(".", 1)[0]
    return major.isdigit() and int(major) >= 10


def formatted(value: Any, dp: int) -> Any:
    """A money string with exactly `dp` decimals (PHP's `round`: halves away from zero)."""
    if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
        return value
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return value
    return str(amount.quantize(Decimal(1).scaleb(-dp), rounding=ROUND_HALF_UP))


def _line(line: dict[str, Any], *, dp: int, taxes_too: bool) -> None:
    for key in _LINE_MONEY:
        if key in line:
            line[key] = formatted(line[key], dp)
    if taxes_too:
        for tax in line.get("taxes", []):
            for key in ("total", "subtotal"):
                if key in tax:
                    tax[key] = formatted(tax[key], dp)


def with_precision(document: dict[str, Any], *, version: str, dp: int = DEFAULT_DP) -> dict[str, Any]:
    """An order or refund document as the shop of `version` writes it for `?dp=dp`."""
    out = copy.deepcopy(document)
    taxes_too = rounds_line_taxes(version)
    for key in (*_ORDER_MONEY, "amount"):
        if key in out:
            out[key] = formatted(out[key], dp)
    for lines in _LINES:
        for line in out.get(lines, []):
            _line(line, dp=dp, taxes_too=taxes_too)
    for line in out.get("tax_lines", []):
        for key in _TAX_LINE_MONEY:
            if key in line:
                line[key] = formatted(line[key], dp)
    for refund in out.get("refunds", []):
        if "total" in refund:
            refund["total"] = formatted(refund["total"], dp)
    return out
