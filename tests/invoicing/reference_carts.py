"""The six example orders of the reference notes, rebuilt from their carts with the checkout simulator.

Only the carts are written down here; every amount in the resulting orders is computed by
`app.sandbox.woocommerce.checkout`. The tests compare those amounts with the figures worked out
by hand in the reference notes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.sandbox.woocommerce.cart import CartItem, Coupon, Customer, Fee, ShippingMethod, ShopRefundEntry
from app.sandbox.woocommerce.checkout import build_order
from app.woocommerce.models import Order

POSTNL = ShippingMethod("PostNL pakket", Decimal("4.95"), instance_id="3")


def _consumer(first: str, last: str, *, customer_id: int = 0) -> Customer:
    return Customer(
        first_name=first,
        last_name=last,
        email=f"{first.lower()}.{last.lower().replace(' ', '')}@example.com",
        address_1="Keizersgracht 112",
        city="Amsterdam",
        postcode="1015 CV",
        country="NL",
        phone="06 12345678",
        customer_id=customer_id,
    )


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


CARTS: dict[str, dict[str, Any]] = {
    # NL consumer, prices excl. VAT, mug 12.40 × 2, flat-rate shipping.
    "a": {
        "order_id": 1041,
        "customer": _consumer("Sanne", "de Vries"),
        "items": [CartItem("Koffiemok Delfts Blauw", Decimal("12.40"), 2, sku="MOK-DB-01", product_id=812)],
        "shipping": [POSTNL],
        "created_at": _utc(2025, 3, 10, 13, 22, 58),
        "paid_at": _utc(2025, 3, 10, 13, 23, 41),
        "completed_at": _utc(2025, 3, 11, 8, 5, 12),
        "transaction_id": "tr_7UhSN1zuXS",
    },
    # Prices incl. VAT: teapot 29.95 at 21 %, tea 6.49 × 3 at 9 %.
    "b": {
        "order_id": 1187,
        "customer": _consumer("Pieter", "Jansen", customer_id=34),
        "prices_include_tax": True,
        "items": [
            CartItem("Theepot Porselein 1L", Decimal("29.95"), sku="TP-POR-1L", product_id=1460),
            CartItem(
                "Biologische Earl Grey 100 g", Decimal("6.49"), 3, tax_class="reduced-rate", sku="THEE-EG-100"
            ),
        ],
        "shipping": [POSTNL],
        "created_at": _utc(2025, 4, 14, 18, 41, 17),
        "paid_at": _utc(2025, 4, 14, 18, 42, 3),
        "completed_at": _utc(2025, 4, 15, 8, 12, 44),
        "payment_method": "stripe",
        "payment_method_title": "Creditcard (Stripe)",
        "transaction_id": "ch_3RCq8vLkdIwHu7ix1a2b3c4d",
    },
    # 10 % coupon and a 5.00 fixed-cart coupon over a 21 % and a 9 % item.
    "c": {
        "order_id": 1255,
        "customer": _consumer("Fatima", "El Amrani"),
        "items": [
            CartItem("Wollen plaid Okergeel", Decimal("59.00"), sku="PLAID-WOL-OKER", product_id=2010),
            CartItem(
                "Kookboek Koken met de seizoenen",
                Decimal("24.50"),
                2,
                tax_class="reduced-rate",
                sku="BOEK-KMS",
            ),
        ],
        "coupons": [
            Coupon("welkom10", "percent", Decimal(10), 311),
            Coupon("korting5", "fixed_cart", Decimal(5), 312),
        ],
        "shipping": [POSTNL],
        "created_at": _utc(2025, 5, 2, 9, 3, 29),
        "paid_at": _utc(2025, 5, 2, 9, 4, 10),
        "completed_at": _utc(2025, 5, 3, 11, 30),
        "payment_method": "ppcp-gateway",
        "payment_method_title": "PayPal",
        "transaction_id": "8FH04512TX338562L",
    },
    # Belgian company with a VAT number, marked VAT exempt: no taxes at all.
    "d": {
        "order_id": 1302,
        "customer": Customer(
            first_name="Lotte",
            last_name="Peeters",
            email="facturen@dezwarteboon.example",
            company="De Zwarte Boon BV",
            address_1="Kammenstraat 41",
            city="Antwerpen",
            postcode="2000",
            country="BE",
            customer_id=57,
            vat_number="BE0765342173",
            vat_exempt=True,
        ),
        "items": [CartItem("Espressomachine Barista Pro X", Decimal("649.00"), sku="ESP-BPX")],
        "shipping": [ShippingMethod("PostNL pakket België", Decimal("12.50"))],
        "created_at": _utc(2025, 6, 19, 14, 0),
        "paid_at": _utc(2025, 6, 20, 8, 2, 11),
        "completed_at": _utc(2025, 6, 20, 13, 47, 9),
        "payment_method": "bacs",
        "payment_method_title": "Bankoverschrijving",
    },
    # Cash-on-delivery fee and a free product.
    "e": {
        "order_id": 1419,
        "customer": _consumer("Daan", "Bakker"),
        "items": [
            CartItem("Geurkaars Vijg &amp; Cassis", Decimal("18.95"), sku="KAARS-VC-200"),
            CartItem("Proefstaal geurkaars (gratis)", Decimal("0.00"), sku="KAARS-PROEF"),
        ],
        "fees": [Fee("Rembourskosten", Decimal("2.95"))],
        "shipping": [POSTNL],
        "created_at": _utc(2025, 9, 8, 15, 0),
        "paid_at": _utc(2025, 9, 9, 10, 0, 31),
        "completed_at": _utc(2025, 9, 9, 10, 0, 31),
        "payment_method": "cod",
        "payment_method_title": "Rembours",
    },
    # Completed order with one refunded apron.
    "f": {
        "order_id": 1537,
        "customer": _consumer("Emma", "Visser", customer_id=88),
        "items": [
            CartItem("Linnen theedoek Ecru", Decimal("8.95"), 3, sku="TD-LIN-ECRU"),
            CartItem("Katoenen schort Olijfgroen", Decimal("34.95"), sku="SCH-KAT-OLIJF"),
        ],
        "shipping": [POSTNL],
        "refunds": [ShopRefundEntry(1612, Decimal("-42.29"), "Retour: schort in verkeerde maat")],
        "created_at": _utc(2025, 11, 3, 18, 48),
        "paid_at": _utc(2025, 11, 3, 18, 49, 5),
        "completed_at": _utc(2025, 11, 4, 8, 30, 10),
        "transaction_id": "tr_Qk3vP9sWxA",
    },
}


def order_document(name: str) -> dict[str, Any]:
    return build_order(**CARTS[name])


def order(name: str) -> Order:
    return Order.model_validate(order_document(name))
