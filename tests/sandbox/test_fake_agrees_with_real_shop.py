"""The fake shop answers in the real shop's shapes: every field WooCommerce 9.9.5 and 10.0.2 sent
(recorded in tests/fixtures/realshop/), of the same JSON type, money with the same decimals at each
`dp` — and webhooks and pings with the same headers, ids and encoding."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pytest

from app.sandbox.woocommerce import ShopSandbox
from tests import recorded
from tests.invoicing.reference_carts import CARTS, order_document

MONEY_KEYS = frozenset(
    {
        "total", "subtotal", "total_tax", "subtotal_tax", "tax_total", "shipping_tax_total", "discount_total",
        "discount_tax", "shipping_total", "shipping_tax", "cart_tax", "amount",
    }
)  # fmt: skip
# Paths whose values the fake leaves to the caller's documents (what a test or a sample puts in).
FREE_FORM = ("meta_data", "_links")


def _kind(key: str, value: Any) -> str:
    if isinstance(value, str) and key in MONEY_KEYS:
        if value == "":
            return "money:empty"
        if re.fullmatch(r"-?\d+\.\d{2}", value):
            return "money:2dp"
        if re.fullmatch(r"-?\d+\.\d{6}", value):
            return "money:6dp"
        return "money:raw" if re.fullmatch(r"-?\d+(\.\d+)?", value) else "money:not-a-number"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def shapes(documents: Iterable[Any]) -> dict[str, set[str]]:
    """Every path in the documents (`.line_items[].taxes[].total`) → the kinds of value found there."""
    found: dict[str, set[str]] = {}

    def walk(value: Any, path: str, key: str) -> None:
        if any(part in path for part in FREE_FORM) and path.count(".") > 1:
            return
        if isinstance(value, dict):
            found.setdefault(path, set()).add("object")
            for name, item in value.items():
                walk(item, f"{path}.{name}", name)
        elif isinstance(value, list):
            found.setdefault(path, set()).add("list")
            for item in value:
                walk(item, f"{path}[]", key)
        else:
            found.setdefault(path, set()).add(_kind(key, value))

    for document in documents:
        walk(document, "", "")
    return found


def fake_shop(version: str) -> tuple[ShopSandbox, list[int]]:
    """The fake, set to imitate `version`, with the reference orders and refunds of every kind."""
    shop = ShopSandbox(woocommerce_version=version, ping_on_create=False)
    ids = []
    for name in sorted(CARTS):
        document = order_document(name)
        document["refunds"] = []
        order = shop.add_order(document)
        ids.append(order["id"])
        if name in ("b", "f"):
            first = order["line_items"][0]
            shop.add_refund(
                order["id"],
                amount=Decimal(first["total"]) + Decimal(first["total_tax"]),
                line_items={first["id"]: int(first["quantity"])},
            )
        if name == "c":
            shop.add_refund(order["id"], amount="10.00", reason="Coulance")
        if name == "a":
            shipping = order["shipping_lines"][0]
            gross = Decimal(shipping["total"]) + Decimal(shipping["total_tax"])
            shop.add_refund(order["id"], amount=gross, shipping=True, reason="Verzendkosten terug")
    return shop, ids


# Where the fake differs from what was recorded, and why that is still the real shop's behaviour.
ALLOWED = {
    # The fake's checkout makes cart fees, which keep their amount; fees made through REST (every
    # recorded one) have `amount: ""`.
    (".fee_lines[].amount", "money:2dp"),
}


def _covered(kind: str, real: set[str]) -> bool:
    # A raw amount (9.9's stored taxes) may happen to have two or six decimals.
    return kind in real or (kind in ("money:2dp", "money:6dp") and "money:raw" in real)


def _differences(real: dict[str, set[str]], fake: dict[str, set[str]]) -> list[str]:
    problems = [f"{path}: only the real shop has it" for path in sorted(real.keys() - fake.keys())]
    problems += [f"{path}: only the fake has it" for path in sorted(fake.keys() - real.keys())]
    for path in sorted(real.keys() & fake.keys()):
        extra = {
            kind for kind in fake[path] if not _covered(kind, real[path]) and (path, kind) not in ALLOWED
        }
        if extra:
            problems.append(f"{path}: fake sends {sorted(extra)}, the real shop {sorted(real[path])}")
    return problems


@pytest.mark.parametrize("dp6", [False, True], ids=["dp2", "dp6"])
@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_orders_have_the_real_shops_fields_types_and_decimals(version: str, dp6: bool) -> None:
    shop, ids = fake_shop(version)
    fake = shapes(shop.order_view(order_id, dp=6 if dp6 else 2) for order_id in ids)
    real = shapes(recorded.order(version, case, dp6=dp6) for case in recorded.cases())
    assert _differences(real, fake) == []


@pytest.mark.parametrize("dp6", [False, True], ids=["dp2", "dp6"])
@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_refunds_have_the_real_shops_fields_types_and_decimals(version: str, dp6: bool) -> None:
    shop, ids = fake_shop(version)
    fake = shapes(
        shop.refund_view(order_id, refund, dp=6 if dp6 else 2)
        for order_id in ids
        for refund in shop.refunds.get(order_id, [])
    )
    real = shapes(
        refund for case in recorded.refunded_cases() for refund in recorded.refunds(version, case, dp6=dp6)
    )
    assert _differences(real, fake) == []


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_webhook_deliveries_and_pings_look_like_the_real_ones(version: str) -> None:
    shop, ids = fake_shop(version)
    webhook = shop.add_webhook(delivery_url="https://woobird.example/webhooks/woocommerce", secret="s3cr3t")
    bodies = [shop.webhook_body(order_id) for order_id in ids]
    headers = shop.delivery_headers(webhook, bodies[0])
    real = [recorded.webhook(version, case) for case in recorded.cases()]

    assert sorted(headers) == sorted(real[0]["headers"])
    for name, value in headers.items():
        assert _pattern(value) == _pattern(real[0]["headers"][name]), name
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-WC-Webhook-Delivery-ID"])
    assert headers["X-WC-Webhook-Source"].endswith("/")
    # wp_json_encode: compact, slashes escaped, and the order as REST shows it at the default `dp`.
    for body in [*bodies, *(delivery["body"].encode() for delivery in real)]:
        assert b"\\/" in body
        assert b'": ' not in body
    assert (
        _differences(shapes(json.loads(d["body"]) for d in real), shapes(json.loads(b) for b in bodies)) == []
    )

    ping = recorded.ping(version)
    assert re.fullmatch(r"webhook_id=\d+", ping["body"])
    assert sorted(ping["headers"]) == ["Content-Type", "User-Agent"]
    assert ping["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def _pattern(value: str) -> str:
    """A header's form without its content: 32 hex digits, base64, a URL, digits → 9."""
    if re.fullmatch(r"[0-9a-f]{32}", value):
        return "hex32"
    if re.fullmatch(r"[A-Za-z0-9+/]{43}=", value):
        return "base64-sha256"
    if value.startswith(("http://", "https://")):
        return "url/"
    return re.sub(r"\d+", "9", value)
