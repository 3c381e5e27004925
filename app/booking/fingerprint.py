"""What an invoice booked, as the shop said it: the order version behind it and its fingerprint.

The version holds what an invoice is made of in the shop's own figures — every line (name, SKU,
quantity, total, tax), shipping and fees, the order's totals and currency, and the customer it
goes to — and nothing the shop changes without changing the sale: no status, no meta data, no
refunds (WooCommerce records those beside the order, whose amounts stay as they were sold), no
line ids. It is computed from the WooCommerce order, not from woobird's plan, so a change of
woobird's own settings (a ledger account, a tax rate mapping) never reads as a changed order.

Its fingerprint is stored with the booking; the booking job compares the order's current
fingerprint with it on every delivery and every reconciliation pass (app.booking.orders).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from app.invoicing.vat import vat_number
from app.woocommerce.models import Order

# Version keys, in the order a person reads the difference.
CUSTOMER_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "postcode",
    "city",
    "country",
    "phone",
    "vat_number",
)


def booked_version(order: Order, *, vat_number_keys: Sequence[str]) -> dict[str, Any]:
    """The parts of `order` its invoice is made of, as plain JSON-ready values."""
    billing = order.billing
    customer = {
        "email": (billing.email or "").strip().lower(),
        "first_name": billing.first_name.strip(),
        "last_name": billing.last_name.strip(),
        "company": billing.company.strip(),
        "address_1": billing.address_1.strip(),
        "address_2": billing.address_2.strip(),
        "postcode": billing.postcode.strip(),
        "city": billing.city.strip(),
        "country": billing.country.strip().upper(),
        "phone": billing.phone.strip(),
        "vat_number": vat_number(order, tuple(vat_number_keys)) or "",
    }
    lines = [
        ["item", line.name, line.sku or "", _money(line.quantity), _money(line.total), _money(line.total_tax)]
        for line in order.line_items
    ]
    lines += [
        ["shipping", line.method_title, "", "1", _money(line.total), _money(line.total_tax)]
        for line in order.shipping_lines
    ]
    lines += [
        ["fee", line.name, "", "1", _money(line.total), _money(line.total_tax)] for line in order.fee_lines
    ]
    return {
        "currency": order.currency.upper(),
        "total": _money(order.total),
        "total_tax": _money(order.total_tax),
        "lines": lines,
        "customer": customer,
    }


def fingerprint(version: dict[str, Any]) -> str:
    """A short, stable digest of a version: equal versions, equal fingerprints."""
    canonical = json.dumps(version, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def differences(booked: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed from `booked` to `current`, in words a bookkeeper reads (no customer data)."""
    found: list[str] = []
    for key in ("total", "total_tax", "currency"):
        if booked.get(key) != current.get(key):
            found.append(f"{key.replace('_', ' ')} {booked.get(key)} → {current.get(key)}")
    if booked.get("lines") != current.get("lines"):
        found.append(_line_change(booked.get("lines") or [], current.get("lines") or []))
    old_customer, new_customer = booked.get("customer") or {}, current.get("customer") or {}
    changed = [name for name in CUSTOMER_FIELDS if old_customer.get(name) != new_customer.get(name)]
    if changed:
        found.append("customer " + ", ".join(name.replace("_", " ") for name in changed))
    return found


def _line_change(booked: list[list[str]], current: list[list[str]]) -> str:
    added = [line for line in current if line not in booked]
    removed = [line for line in booked if line not in current]
    parts = []
    if removed:
        parts.append(f"{len(removed)} line(s) no longer as booked")
    if added:
        parts.append(f"{len(added)} line(s) new or changed ({', '.join(line[1] for line in added[:3])})")
    return "lines: " + ("; ".join(parts) or "reordered")


def _money(value: Decimal) -> str:
    # Normalised, so "12.5" and "12.50" from two API versions are the same figure.
    return format(value.normalize(), "f")
