"""The Dutch test shop: what the rig sets up in every real WooCommerce it installs.

NL base, EUR, 21 % and 9 % (and a 0 % class for gift vouchers), DE 19 % and BE 21 % for OSS
consumers, flat-rate and free shipping, bank transfer and cash on delivery, a percent and a
fixed-cart coupon, and products whose prices do not divide evenly — simple and variable, with and
without SKU. Prices are entered as they are; whether they include VAT is the shop's
`woocommerce_prices_include_tax` option, which the tests switch per order (`RealShop.prices_include_tax`).
"""

from __future__ import annotations

from typing import Any

STANDARD, REDUCED, ZERO = "", "reduced-rate", "zero-rate"

TAX_RATES: dict[str, dict[str, Any]] = {
    "NL21": {"country": "NL", "rate": "21.0000", "name": "BTW", "class": STANDARD, "shipping": True},
    "NL9": {"country": "NL", "rate": "9.0000", "name": "BTW laag", "class": REDUCED, "shipping": True},
    "NL0": {"country": "NL", "rate": "0.0000", "name": "BTW 0%", "class": ZERO, "shipping": False},
    "DE19": {"country": "DE", "rate": "19.0000", "name": "MwSt", "class": STANDARD, "shipping": True},
    "BE21": {"country": "BE", "rate": "21.0000", "name": "BTW", "class": STANDARD, "shipping": True},
}

FLAT_NL = "4.95"
FREE_FROM = "75"
FLAT_EU = "12.50"
FLAT_WORLD = "25.00"

ZONES: list[dict[str, Any]] = [
    {
        "name": "Nederland",
        "countries": ["NL"],
        "methods": {
            "flat_nl": {
                "id": "flat_rate",
                "settings": {"title": "PostNL pakket", "tax_status": "taxable", "cost": FLAT_NL},
            },
            "free_nl": {
                "id": "free_shipping",
                "settings": {"title": "Gratis verzending", "requires": "min_amount", "min_amount": FREE_FROM},
            },
        },
    },
    {
        "name": "Europa",
        "countries": ["DE", "BE"],
        "methods": {
            "flat_eu": {
                "id": "flat_rate",
                "settings": {"title": "DHL Europa", "tax_status": "taxable", "cost": FLAT_EU},
            }
        },
    },
    {
        "name": "Wereld",
        "countries": [],  # "Locations not covered by your other zones"
        "methods": {
            "flat_world": {
                "id": "flat_rate",
                "settings": {"title": "Wereldwijd", "tax_status": "taxable", "cost": FLAT_WORLD},
            }
        },
    },
]

GATEWAYS: dict[str, dict[str, Any]] = {
    "bacs": {"enabled": "yes", "title": "Bankoverschrijving", "description": "", "instructions": ""},
    "cod": {"enabled": "yes", "title": "Rembours", "enable_for_methods": [], "enable_for_virtual": "yes"},
}

# key → product; prices as a shop owner types them (incl. or excl. VAT per the shop's option).
PRODUCTS: dict[str, dict[str, Any]] = {
    "mug": {"name": "Koffiemok Delfts Blauw", "price": "12.40", "sku": "MOK-DB-01"},
    "teapot": {"name": "Theepot gietijzer", "price": "29.95", "sku": "THP-GZ"},
    "candle": {"name": "Kaars bijenwas", "price": "3.33", "sku": "KRS-BW"},
    "plaid": {"name": "Plaid wol", "price": "59.00"},  # no SKU
    "tea": {"name": "Rooibos thee 100 g", "price": "6.49", "sku": "THEE-RB", "tax_class": REDUCED},
    "liquorice": {"name": "Dropjes", "price": "0.99", "sku": "DROP-99", "tax_class": REDUCED},
    "cookbook": {"name": "Kookboek Seizoenen", "price": "24.50", "tax_class": REDUCED},  # no SKU
    "voucher": {"name": "Cadeaubon", "price": "25.00", "sku": "BON-25", "tax_class": ZERO},
    "sticker": {"name": "Sticker (gratis)", "price": "0.00", "sku": "STK-0"},
    "shirt": {
        "name": "T-shirt biologisch katoen",
        "sku": "TS-BIO",
        "attribute": "Maat",
        "variations": {
            "S": {"price": "19.99", "sku": "TS-BIO-S"},
            "M": {"price": "19.99"},  # no SKU of its own: WooCommerce reports the parent's
            "L": {"price": "21.45", "sku": "TS-BIO-L"},
        },
    },
}

COUPONS: dict[str, dict[str, Any]] = {
    "welkom10": {"type": "percent", "amount": "10"},
    "korting5": {"type": "fixed_cart", "amount": "5"},
}

OPTIONS: dict[str, Any] = {
    "blogname": "Woobird Testwinkel",
    "woocommerce_store_address": "Keizersgracht 1",
    "woocommerce_store_city": "Amsterdam",
    "woocommerce_store_postcode": "1015 CJ",
    "woocommerce_default_country": "NL",
    "woocommerce_allowed_countries": "all",
    "woocommerce_ship_to_countries": "",
    "woocommerce_currency": "EUR",
    "woocommerce_price_num_decimals": "2",
    "woocommerce_price_decimal_sep": ",",
    "woocommerce_price_thousand_sep": ".",
    "woocommerce_calc_taxes": "yes",
    "woocommerce_prices_include_tax": "yes",
    "woocommerce_tax_based_on": "shipping",
    "woocommerce_shipping_tax_class": "inherit",
    "woocommerce_tax_round_at_subtotal": "no",
    "woocommerce_tax_display_shop": "incl",
    "woocommerce_tax_display_cart": "incl",
    "woocommerce_enable_coupons": "yes",
    "woocommerce_enable_guest_checkout": "yes",
    "woocommerce_coming_soon": "no",
    "woocommerce_onboarding_profile": {"skipped": True},
}


def shop_spec(*, consumer_key: str, consumer_secret: str) -> dict[str, Any]:
    """The JSON `php/setup.php` reads on stdin."""
    return {
        "options": OPTIONS,
        "tax_rates": TAX_RATES,
        "zones": ZONES,
        "gateways": GATEWAYS,
        "products": PRODUCTS,
        "coupons": COUPONS,
        "key": {"consumer_key": consumer_key, "consumer_secret": consumer_secret},
    }
