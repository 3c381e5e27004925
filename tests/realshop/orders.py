"""Orders placed in the real shop the ways a shop gets them: the REST API (as the admin's order
screen and most integrations do — WooCommerce calculates taxes and totals itself) and the Store
API checkout (as the shop's own block checkout does, a guest with a cart)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.realshop import catalogue
from tests.realshop.shop import RealShop

Item = tuple[str, int] | tuple[str, int, str]  # product key, quantity[, variation option]

ADDRESSES: dict[str, dict[str, str]] = {
    "NL": {"address_1": "Keizersgracht 112", "city": "Amsterdam", "postcode": "1015 CV", "country": "NL"},
    "DE": {"address_1": "Torstraße 5", "city": "Berlin", "postcode": "10119", "country": "DE"},
    "BE": {"address_1": "Meir 10", "city": "Antwerpen", "postcode": "2000", "country": "BE"},
    "US": {"address_1": "1 Main St", "city": "Portland", "postcode": "97201", "state": "OR", "country": "US"},
}
SHIPPING: dict[str, tuple[str, str, str]] = {  # key → method title, method id, cost excl. VAT
    "flat_nl": ("PostNL pakket", "flat_rate", catalogue.FLAT_NL),
    "free_nl": ("Gratis verzending", "free_shipping", "0.00"),
    "flat_eu": ("DHL Europa", "flat_rate", catalogue.FLAT_EU),
    "flat_world": ("Wereldwijd", "flat_rate", catalogue.FLAT_WORLD),
}


def customer(country: str = "NL", *, email: str, company: str = "") -> dict[str, dict[str, str]]:
    first, _, last = email.partition("@")[0].replace(".", " ").title().partition(" ")
    person = {"first_name": first, "last_name": last or "Klant", "company": company, **ADDRESSES[country]}
    return {"billing": {**person, "email": email, "phone": "0612345678"}, "shipping": person}


def line_items(shop: RealShop, items: list[Item]) -> list[dict[str, Any]]:
    lines = []
    for item in items:
        key, quantity = item[0], item[1]
        line: dict[str, Any] = {"product_id": shop.product_id(key), "quantity": quantity}
        if len(item) == 3:
            line["variation_id"] = shop.product_id(key, item[2])
        lines.append(line)
    return lines


def place_order(
    shop: RealShop,
    *,
    items: list[Item],
    email: str,
    country: str = "NL",
    company: str = "",
    shipping: str | None = None,
    fees: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    coupons: list[str] = (),  # type: ignore[assignment]
    meta: dict[str, str] | None = None,
    payment: str = "bacs",
    status: str = "pending",
) -> dict[str, Any]:
    """Create an order through REST; fees are (name, total excl. VAT, tax class).

    WooCommerce calculates the order on create: taxes per line, a negative fee spread over the
    cart's rates, coupons, and no tax at all when the meta says `is_vat_exempt`.
    """
    body: dict[str, Any] = {
        "status": status,
        "payment_method": payment,
        "payment_method_title": catalogue.GATEWAYS[payment]["title"],
        **customer(country, email=email, company=company),
        "line_items": line_items(shop, items),
        "coupon_lines": [{"code": code} for code in coupons],
        "fee_lines": [
            {"name": name, "total": total, "tax_status": "taxable", "tax_class": tax_class}
            for name, total, tax_class in fees
        ],
        "meta_data": [{"key": key, "value": value} for key, value in (meta or {}).items()],
    }
    if shipping is not None:
        title, method_id, cost = SHIPPING[shipping]
        body["shipping_lines"] = [{"method_id": method_id, "method_title": title, "total": cost}]
    response = shop.rest.post("/wc/v3/orders", json=body)
    if response.status_code != 201:
        raise AssertionError(f"the shop refused the order: {response.status_code} {response.text[:500]}")
    order: dict[str, Any] = response.json()
    return order


def get_order(shop: RealShop, order_id: int, **params: Any) -> dict[str, Any]:
    response = shop.rest.get(f"/wc/v3/orders/{order_id}", params=params)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def set_status(shop: RealShop, order: dict[str, Any], status: str) -> dict[str, Any]:
    """What the shop owner does in wp-admin: completing a bank-transfer order marks it paid."""
    response = shop.rest.put(f"/wc/v3/orders/{order['id']}", json={"status": status})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def refund(
    shop: RealShop,
    order: dict[str, Any],
    *,
    amount: Decimal,
    lines: dict[int, int] | None = None,
    shipping: bool = False,
    reason: str = "Retour",
) -> dict[str, Any]:
    """Refund through REST as wp-admin's refund button does (no payment gateway involved).

    `lines` maps order line ids to quantities given back, each with its full share of tax.
    """
    refund_lines: list[dict[str, Any]] = []
    for line in order["line_items"]:
        quantity = (lines or {}).get(line["id"])
        if not quantity:
            continue
        share = Decimal(quantity) / Decimal(line["quantity"])
        refund_lines.append(
            {
                "id": line["id"],
                "quantity": quantity,
                "refund_total": str((Decimal(line["total"]) * share).quantize(Decimal("0.01"))),
                "refund_tax": [
                    {
                        "id": tax["id"],
                        "refund_total": str((Decimal(tax["total"]) * share).quantize(Decimal("0.01"))),
                    }
                    for tax in line["taxes"]
                ],
            }
        )
    if shipping:
        for line in order["shipping_lines"]:
            refund_lines.append(
                {
                    "id": line["id"],
                    "refund_total": line["total"],
                    "refund_tax": [{"id": tax["id"], "refund_total": tax["total"]} for tax in line["taxes"]],
                }
            )
    response = shop.rest.post(
        f"/wc/v3/orders/{order['id']}/refunds",
        json={"amount": str(amount), "reason": reason, "api_refund": False, "line_items": refund_lines},
    )
    if response.status_code != 201:
        raise AssertionError(f"the shop refused the refund: {response.status_code} {response.text[:500]}")
    result: dict[str, Any] = response.json()
    return result


def store_checkout(
    shop: RealShop,
    *,
    items: list[Item],
    email: str,
    country: str = "NL",
    coupons: list[str] = (),  # type: ignore[assignment]
    payment: str = "cod",
) -> dict[str, Any]:
    """A guest buys through the Store API, as the block checkout does; returns the REST order."""
    with httpx.Client(base_url=f"{shop.url}/wp-json/wc/store/v1", timeout=60) as store:
        cart = store.get("/cart")
        cart.raise_for_status()
        headers = {"Cart-Token": cart.headers["cart-token"], "Nonce": cart.headers.get("nonce", "")}
        for item in items:
            product = shop.product_id(item[0], item[2] if len(item) == 3 else None)
            store.post(
                "/cart/add-item", json={"id": product, "quantity": item[1]}, headers=headers
            ).raise_for_status()
        for code in coupons:
            store.post("/cart/apply-coupon", json={"code": code}, headers=headers).raise_for_status()
        address = customer(country, email=email)
        addresses = {"billing_address": address["billing"], "shipping_address": address["shipping"]}
        store.post("/cart/update-customer", json=addresses, headers=headers).raise_for_status()
        placed = store.post("/checkout", json={**addresses, "payment_method": payment}, headers=headers)
        if placed.status_code != 200:
            raise AssertionError(f"checkout failed: {placed.status_code} {placed.text[:500]}")
    return get_order(shop, int(placed.json()["order_id"]))
