"""The sandbox demo's sample orders: one of every kind woobird has to book to the cent.

Built with `app.sandbox.woocommerce.checkout.build_order`, so their numbers add up as a real
shop's do. The lines carry no WooCommerce product id: booking does not map those to Moneybird
products yet. The last one is meant to fail: it charges a VAT rate the simulated Moneybird has no
tax rate for, to show what a person sees when an order cannot be booked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from app.sandbox.woocommerce.cart import (
    DE_REDUCED,
    DE_STANDARD,
    DUTCH_SHOP_RATES,
    CartItem,
    Coupon,
    Customer,
    Fee,
    ShippingMethod,
)
from app.sandbox.woocommerce.checkout import build_order

FIRST_ORDER_ID = 5001
POSTNL = ShippingMethod("PostNL", Decimal("4.95"))


@dataclass(frozen=True)
class Sample:
    kind: str
    expect_failure: bool
    cart: dict[str, Any]


def samples() -> list[Sample]:
    mug = CartItem("Koffiemok Delfts Blauw", Decimal("12.40"), quantity=2, sku="MOK-DB-01")
    apron = CartItem("Katoenen schort Olijfgroen", Decimal("34.95"), sku="SCH-KAT-OLIJF")
    book = CartItem("Kookboek Hollandse Pot", Decimal("24.50"), tax_class="reduced-rate", sku="BOEK-HP")
    tea = CartItem("Losse thee 250 g", Decimal("13.95"), quantity=3, tax_class="reduced-rate", sku="THEE-250")
    gift = CartItem("Proefzakje thee", Decimal("0"), tax_class="reduced-rate", sku="THEE-PROEF")
    return [
        Sample(
            "plain 21 % VAT, prices excluding VAT, shipping",
            False,
            {"customer": _customer("Jan", "de Vries", "Utrecht"), "items": [mug], "shipping": [POSTNL]},
        ),
        Sample(
            "prices including VAT, mixed 21 % and 9 %",
            False,
            {
                "customer": _customer("Fatima", "El Amrani", "Rotterdam"),
                "items": [
                    CartItem("Katoenen schort Olijfgroen", Decimal("42.29")),
                    CartItem("Kookboek", Decimal("26.71"), tax_class="reduced-rate"),
                ],
                "shipping": [POSTNL],
                "prices_include_tax": True,
            },
        ),
        Sample(
            "coupons (10 % and € 5 off the cart) over mixed rates",
            False,
            {
                "customer": _customer("Pieter", "Jansen", "Groningen"),
                "items": [apron, book, tea],
                "coupons": [
                    Coupon("WELKOM10", "percent", Decimal(10)),
                    Coupon("VIJFEURO", "fixed_cart", Decimal(5)),
                ],
                "shipping": [POSTNL],
            },
        ),
        Sample(
            "payment fee and a free product",
            False,
            {
                "customer": _customer("Sanne", "Bakker", "Zwolle"),
                "items": [mug, gift],
                "fees": [Fee("Transactiekosten iDEAL", Decimal("0.29"))],
                "shipping": [POSTNL],
            },
        ),
        Sample(
            "business customer in Belgium: VAT reverse-charged",
            False,
            {
                "customer": Customer(
                    "Lotte",
                    "Peeters",
                    "inkoop@bloemenpeeters.be",
                    company="Bloemen Peeters BV",
                    address_1="Meir 12",
                    city="Antwerpen",
                    postcode="2000",
                    country="BE",
                    vat_number="BE0123456749",
                    vat_exempt=True,
                ),
                "items": [apron, mug],
                "shipping": [POSTNL],
            },
        ),
        Sample(
            "consumer in Germany: German VAT (OSS)",
            False,
            {
                "customer": Customer(
                    "Jonas",
                    "Schmidt",
                    "jonas.schmidt@example.de",
                    address_1="Hauptstraße 5",
                    city="Köln",
                    postcode="50667",
                    country="DE",
                ),
                "items": [apron],
                "shipping": [POSTNL],
                "tax_rates": (*DUTCH_SHOP_RATES, DE_STANDARD),
            },
        ),
        Sample(
            "customer outside the EU: export, no VAT",
            False,
            {
                "customer": Customer(
                    "Emma",
                    "Wilson",
                    "emma.wilson@example.com",
                    address_1="12 High Street",
                    city="Bristol",
                    postcode="BS1 4DJ",
                    country="GB",
                ),
                "items": [mug],
                "shipping": [POSTNL],
            },
        ),
        Sample(
            "fails on purpose: German 7 % VAT, for which Moneybird has no tax rate",
            True,
            {
                "customer": Customer(
                    "Lena",
                    "Fischer",
                    "lena.fischer@example.de",
                    address_1="Ringstraße 1",
                    city="Aachen",
                    postcode="52062",
                    country="DE",
                ),
                "items": [CartItem("Kookboek Hollandse Pot", Decimal("24.50"), tax_class="reduced-rate")],
                "tax_rates": (*DUTCH_SHOP_RATES, DE_STANDARD, DE_REDUCED),
            },
        ),
    ]


def _customer(first: str, last: str, city: str) -> Customer:
    email = f"{first.lower()}.{last.lower().replace(' ', '')}@example.nl"
    return Customer(first, last, email, address_1="Dorpsstraat 1", city=city, postcode="3511 AA")


def sample_carts(paid_at: datetime) -> list[dict[str, Any]]:
    """The samples as order documents, paid a few minutes apart up to `paid_at`."""
    documents = []
    chosen = samples()
    for index, sample in enumerate(chosen):
        paid = paid_at - timedelta(minutes=2 * (len(chosen) - index))
        documents.append(
            build_order(
                order_id=FIRST_ORDER_ID + index,
                created_at=paid - timedelta(minutes=1),
                paid_at=paid,
                completed_at=paid + timedelta(seconds=30),
                transaction_id=f"tr_sandbox_{FIRST_ORDER_ID + index}",
                **sample.cart,
            )
        )
    return documents


def expected_failures() -> set[int]:
    return {FIRST_ORDER_ID + index for index, sample in enumerate(samples()) if sample.expect_failure}
