"""What an invoice booked, as the shop said it: equal sales give equal fingerprints, changes are named."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.booking.fingerprint import booked_version, differences, fingerprint
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.sandbox.woocommerce.checkout import build_order
from app.woocommerce.models import Order

KEYS = ("_billing_vat_number",)
PAID = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def _document(**customer: Any) -> dict[str, Any]:
    return build_order(
        order_id=9001,
        customer=Customer(first_name="Lotte", last_name="Bos", email="lotte@example.nl", **customer),
        items=[CartItem(name="Vaas", price=Decimal("24.95"), quantity=1, sku="V-1")],
        created_at=PAID,
        paid_at=PAID,
        completed_at=PAID,
    )


def _version(document: dict[str, Any]) -> dict[str, Any]:
    return booked_version(Order.model_validate(document), vat_number_keys=KEYS)


def test_what_does_not_change_the_sale_keeps_the_fingerprint() -> None:
    document = _document()
    same = copy.deepcopy(document)
    same.update(status="refunded", customer_note="Graag inpakken", date_modified_gmt="2026-05-01T10:00:00")
    same["meta_data"] = [{"id": 1, "key": "_reduced_stock", "value": "1"}]
    same["refunds"] = [{"id": 77, "reason": "", "total": "-5.00"}]
    same["line_items"][0]["id"] = 4242  # an edit that re-saved the same line
    same["billing"]["email"] = "Lotte@Example.NL"
    assert fingerprint(_version(same)) == fingerprint(_version(document))


def test_a_changed_amount_or_customer_changes_it_and_is_named_without_customer_data() -> None:
    booked = _version(_document())
    edited = _document(city="Zwolle")
    edited["line_items"][0]["quantity"] = 2
    edited["line_items"][0]["total"] = "41.24"
    edited["total"] = "49.90"
    edited["meta_data"] = [{"id": 2, "key": "_billing_vat_number", "value": "NL123456789B01"}]
    current = _version(edited)

    assert fingerprint(current) != fingerprint(booked)
    words = differences(booked, current)
    assert words[0] == f"total {booked['total']} → 49.9"
    assert words[1].startswith("lines: 1 line(s) no longer as booked; 1 line(s) new or changed (Vaas)")
    assert words[2] == "customer city, vat number"
    assert not any("Zwolle" in word or "NL123456789B01" in word for word in words)


def test_a_change_of_the_customer_alone_names_no_line() -> None:
    booked = _version(_document())
    assert differences(booked, _version(_document(city="Zwolle"))) == ["customer city"]
    assert differences(booked, booked) == []


def test_the_same_lines_in_another_order_are_named_as_reordered() -> None:
    document = _document()
    document["line_items"].append(dict(document["line_items"][0]) | {"id": 2, "name": "Kom", "sku": "K-1"})
    swapped = copy.deepcopy(document)
    swapped["line_items"].reverse()
    assert differences(_version(document), _version(swapped)) == ["lines: reordered"]
