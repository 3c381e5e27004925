"""Small hand-made order documents for tests that care about intake, not arithmetic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from app.webhooks import sign

_BASE = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _gmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def order_document(
    order_id: int = 1042,
    *,
    status: str = "completed",
    paid: datetime | None = _BASE,
    modified: datetime | None = None,
    email: str = "jan@example.nl",
) -> dict[str, Any]:
    """A one-line 21 % order: mug 12.40 × 2 + shipping 4.95, VAT per line rounded: 36.00."""
    modified = modified or (paid or _BASE) + timedelta(minutes=5)
    return {
        "id": order_id,
        "parent_id": 0,
        "number": str(order_id),
        "status": status,
        "currency": "EUR",
        "prices_include_tax": False,
        "date_created_gmt": _gmt(_BASE - timedelta(minutes=10)),
        "date_modified_gmt": _gmt(modified),
        "date_paid_gmt": _gmt(paid) if paid else None,
        "date_completed_gmt": _gmt(modified) if status == "completed" else None,
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "4.95",
        "shipping_tax": "1.04",
        "cart_tax": "5.21",
        "total": "36.00",
        "total_tax": "6.25",
        "customer_id": 0,
        "billing": {
            "first_name": "Jan",
            "last_name": "de Vries",
            "company": "",
            "address_1": "Dorpsstraat 1",
            "address_2": "",
            "city": "Utrecht",
            "state": "",
            "postcode": "3511 AA",
            "country": "NL",
            "email": email,
            "phone": "",
        },
        "payment_method": "ideal",
        "transaction_id": f"tr_{order_id}",
        "meta_data": [],
        "line_items": [
            {
                "id": order_id * 10 + 1,
                "name": "Mok &amp; schotel",
                "product_id": 77,
                "variation_id": 0,
                "quantity": 2,
                "tax_class": "",
                "subtotal": "24.80",
                "subtotal_tax": "5.21",
                "total": "24.80",
                "total_tax": "5.21",
                "taxes": [{"id": 1, "total": "5.208", "subtotal": "5.208"}],
                "meta_data": [],
                "sku": "MOK-1",
                "price": 12.4,
            }
        ],
        "tax_lines": [
            {
                "id": order_id * 10 + 2,
                "rate_code": "NL-BTW-1",
                "rate_id": 1,
                "label": "BTW",
                "compound": False,
                "tax_total": "5.21",
                "shipping_tax_total": "1.04",
                "rate_percent": 21,
            }
        ],
        "shipping_lines": [
            {
                "id": order_id * 10 + 3,
                "method_title": "PostNL",
                "method_id": "flat_rate",
                "total": "4.95",
                "total_tax": "1.04",
                "taxes": [{"id": 1, "total": "1.0395", "subtotal": ""}],
            }
        ],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
    }


def wc_body(document: dict[str, Any]) -> bytes:
    """Compact JSON with escaped slashes, as WooCommerce's wp_json_encode sends it."""
    return json.dumps(document, separators=(",", ":")).replace("/", "\\/").encode()


def signed_headers(body: bytes, *, secret: str, topic: str = "order.updated") -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-resource": topic.split(".")[0],
        "x-wc-webhook-event": topic.split(".")[-1],
        "x-wc-webhook-signature": sign(secret, body),
        "x-wc-webhook-id": "7",
        "x-wc-webhook-source": "https://shop.test/",
    }
