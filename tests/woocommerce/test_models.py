"""Parsing the shop's documents: money exact, dates aware, nonsense refused with its field named."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.woocommerce.models import Order, OrderHeader
from tests.factories import order_document


def test_money_is_exact_whatever_json_type_it_arrived_as() -> None:
    document = order_document(7)
    document["line_items"][0]["price"] = 5.954128333333333
    document["line_items"][0]["taxes"][0]["total"] = "5.208"
    order = Order.model_validate(document)
    assert order.line_items[0].price == Decimal("5.954128333333333")
    assert order.line_items[0].taxes[0].total == Decimal("5.208")
    assert order.total == Decimal("36.00")


def test_gmt_dates_become_aware_utc() -> None:
    order = Order.model_validate(order_document(7))
    assert order.date_paid_gmt == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_html_entities_in_names_are_unescaped() -> None:
    order = Order.model_validate(order_document(7))
    assert order.line_items[0].name == "Mok & schotel"


@pytest.mark.parametrize(
    ("field", "value"),
    [("quantity", 10**30), ("quantity", "NaN"), ("total", "1e13"), ("total", "Infinity"), ("price", True)],
)
def test_implausible_line_numbers_are_refused_naming_the_field(field: str, value: object) -> None:
    document = order_document(7)
    document["line_items"][0][field] = value
    with pytest.raises(ValidationError) as refused:
        Order.model_validate(document)
    assert refused.value.errors()[0]["loc"] == ("line_items", 0, field)


@pytest.mark.parametrize("order_id", [0, -5, 2**63])
def test_ids_outside_wordpress_range_are_refused(order_id: int) -> None:
    with pytest.raises(ValidationError):
        OrderHeader.model_validate({"id": order_id, "status": "completed"})
