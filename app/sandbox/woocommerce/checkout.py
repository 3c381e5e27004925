"""WooCommerce's classic checkout: a cart in, the order document (REST v3 shape) out.

The amounts come from `cart` (WooCommerce's cart totals); this module stores them the way the
order item setters and the REST formatting do. The only floats are the two fields WooCommerce
itself emits as PHP floats (`price`, `rate_percent`), produced the way PHP produces them so the
documents match real ones. Deterministic given the inputs; `random_order` makes plausible ones.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.sandbox.woocommerce.cart import (
    DUTCH_SHOP_RATES,
    HUNDRED,
    OSS_SHOP_RATES,
    Cart,
    CartItem,
    Charge,
    Coupon,
    Customer,
    Fee,
    Line,
    ShippingMethod,
    ShopRefundEntry,
    WooTaxRate,
    cart_totals,
    items_total,
    php_round,
)
from app.sandbox.woocommerce.wire import currency_symbol

SHOP_URL = "https://winkel.example.nl"
WOOCOMMERCE_VERSION = "9.8.5"


# --- REST formatting, as WooCommerce's PHP does it -------------------------------------------------


def _raw(value: Decimal) -> str:
    """wc_format_decimal of a float: 6 decimals, trailing zeros trimmed (`5.208`, `0`)."""
    text = f"{php_round(value, 6):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _dp(value: Decimal) -> str:
    """REST money formatting: exactly two decimals."""
    return f"{php_round(value, 2):f}"


def _php_number(value: Decimal) -> int | float:
    """A number WooCommerce emits as a PHP float: whole values encode without a fraction."""
    return int(value) if value == value.to_integral_value() else float(value)


def _php_price(stored_total: str, quantity: int) -> int | float:
    """`price` = stored line total ÷ quantity in PHP arithmetic (int when exact, else float)."""
    if quantity == 0:
        return 0
    if "." not in stored_total and int(stored_total) % quantity == 0:
        return int(stored_total) // quantity
    return float(stored_total) / quantity


# --- The order document ----------------------------------------------------------------------------


def build_order(
    *,
    order_id: int,
    customer: Customer,
    items: Sequence[CartItem],
    coupons: Sequence[Coupon] = (),
    shipping: Sequence[ShippingMethod] = (),
    fees: Sequence[Fee] = (),
    prices_include_tax: bool = False,
    tax_rates: Sequence[WooTaxRate] = DUTCH_SHOP_RATES,
    base_country: str = "NL",
    coupon_sort: Literal["unit_price", "line_price_times_quantity"] = "unit_price",
    status: str = "completed",
    created_at: datetime,
    paid_at: datetime | None = None,
    completed_at: datetime | None = None,
    payment_method: str = "mollie_wc_gateway_ideal",
    payment_method_title: str = "iDEAL",
    transaction_id: str = "",
    number: str | None = None,
    currency: str = "EUR",
    refunds: Sequence[ShopRefundEntry] = (),
    meta: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The order WooCommerce's classic checkout would store for this cart, as `GET /orders/<id>`.

    `coupon_sort` picks the order in which coupon remainders are handed out: by unit price (as the
    reference notes describe) or by WooCommerce's own `sort_by_price`, which multiplies the line
    price by the quantity.
    """
    cart = cart_totals(
        customer=customer,
        items=items,
        coupons=coupons,
        shipping=shipping,
        fees=fees,
        prices_include_tax=prices_include_tax,
        tax_rates=tax_rates,
        base_country=base_country,
        coupon_sort=coupon_sort,
    )
    ids = _Ids(order_id)
    document = _order_header(
        order_id=order_id,
        customer=customer,
        status=status,
        currency=currency,
        prices_include_tax=prices_include_tax,
        number=number,
    )
    document.update(_dates(created_at=created_at, paid_at=paid_at, completed_at=completed_at))
    document.update(_money_fields(cart))
    document.update(
        payment_method=payment_method,
        payment_method_title=payment_method_title,
        transaction_id=transaction_id,
        meta_data=_order_meta(ids, customer, meta),
        line_items=[_line_item(cart, ids, line) for line in cart.lines],
        tax_lines=_tax_lines(cart, ids),
        shipping_lines=[
            _shipping_line(cart, ids, m, c) for m, c in zip(shipping, cart.shipping, strict=True)
        ],
        fee_lines=[_fee_line(cart, ids, f, c) for f, c in zip(fees, cart.fees, strict=True)],
        coupon_lines=[_coupon_line(cart, ids, coupon) for coupon in coupons],
        refunds=[{"id": r.id, "reason": r.reason, "total": _dp(r.total)} for r in refunds],
        is_editable=status in ("pending", "on-hold", "auto-draft"),
        needs_payment=status in ("pending", "failed") and bool(document["total"] != "0.00"),
        needs_processing=True,
        currency_symbol=currency_symbol(currency),
        _links=_links(order_id, customer.customer_id),
    )
    return document


class _Ids:
    """Item and meta ids: deterministic, unique within the order."""

    def __init__(self, order_id: int) -> None:
        self._next = order_id * 100

    def __call__(self) -> int:
        self._next += 1
        return self._next


def _order_header(
    *,
    order_id: int,
    customer: Customer,
    status: str,
    currency: str,
    prices_include_tax: bool,
    number: str | None,
) -> dict[str, Any]:
    seed = hashlib.sha256(str(order_id).encode()).hexdigest()
    order_key = f"wc_order_{seed[:13]}"
    billing = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company": customer.company,
        "address_1": customer.address_1,
        "address_2": customer.address_2,
        "city": customer.city,
        "state": customer.state,
        "postcode": customer.postcode,
        "country": customer.country,
        "email": customer.email,
        "phone": customer.phone,
    }
    shipping_address = {key: value for key, value in billing.items() if key != "email"}
    shipping_address.update(phone="", country=customer.shipping_country or customer.country)
    return {
        "id": order_id,
        "parent_id": 0,
        "status": status,
        "currency": currency,
        "version": WOOCOMMERCE_VERSION,
        "prices_include_tax": prices_include_tax,
        "customer_id": customer.customer_id,
        "order_key": order_key,
        "billing": billing,
        "shipping": shipping_address,
        "customer_ip_address": "",
        "customer_user_agent": "",
        "created_via": "checkout",
        "customer_note": "",
        "cart_hash": seed[13:45],
        "number": number or str(order_id),
        "payment_url": f"{SHOP_URL}/afrekenen/order-pay/{order_id}/?pay_for_order=true&key={order_key}",
    }


def _local(moment: datetime) -> datetime:
    try:
        return moment.astimezone(ZoneInfo("Europe/Amsterdam"))
    except ZoneInfoNotFoundError:  # hosts without tzdata: the EU summer-time rule
        utc = moment.astimezone(UTC)
        march, october = _last_sunday(utc.year, 3), _last_sunday(utc.year, 10)
        return utc + timedelta(hours=2 if march <= utc < october else 1)


def _last_sunday(year: int, month: int) -> datetime:
    last = datetime(year, month + 1, 1, 1, tzinfo=UTC) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def _dates(
    *, created_at: datetime, paid_at: datetime | None, completed_at: datetime | None
) -> dict[str, Any]:
    def local(moment: datetime | None) -> str | None:
        return _local(moment).strftime("%Y-%m-%dT%H:%M:%S") if moment else None

    def gmt(moment: datetime | None) -> str | None:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if moment else None

    modified = max(m for m in (created_at, paid_at, completed_at) if m is not None)
    return {
        "date_created": local(created_at),
        "date_modified": local(modified),
        "date_completed": local(completed_at),
        "date_paid": local(paid_at),
        "date_created_gmt": gmt(created_at),
        "date_modified_gmt": gmt(modified),
        "date_completed_gmt": gmt(completed_at),
        "date_paid_gmt": gmt(paid_at),
    }


def _merged(charges: Iterable[Mapping[int, Decimal]], rounder: Any = None) -> dict[int, Decimal]:
    merged: dict[int, Decimal] = {}
    for taxes in charges:
        for rate_id, amount in taxes.items():
            merged[rate_id] = merged.get(rate_id, Decimal(0)) + (rounder(amount) if rounder else amount)
    return merged


def _money_fields(cart: Cart) -> dict[str, str]:
    items_tax = _merged((line.taxes for line in cart.lines), cart.round_line_tax)
    all_tax = _merged(
        [
            *(line.taxes for line in cart.lines),
            *(f.taxes for f in cart.fees),
            *(s.taxes for s in cart.shipping),
        ],
        cart.round_line_tax,
    )
    fees_total = sum((f.total for f in cart.fees), Decimal(0))
    shipping_total = sum((s.total for s in cart.shipping), Decimal(0))
    total = php_round(items_total(cart) + fees_total + shipping_total + sum(all_tax.values(), Decimal(0)))
    fee_tax = sum((cart.round_line_tax(a) for f in cart.fees for a in f.taxes.values()), Decimal(0))
    shipping_tax = sum((a for s in cart.shipping for a in s.taxes.values()), Decimal(0))
    cart_tax = sum(items_tax.values(), Decimal(0)) + fee_tax
    discount_tax = sum(cart.coupon_taxes.values(), Decimal(0))
    discount_total = sum((line.discount for line in cart.lines), Decimal(0))
    if cart.prices_include_tax:
        discount_total -= discount_tax
    return {
        "discount_total": _dp(discount_total / HUNDRED),
        "discount_tax": _dp(discount_tax / HUNDRED),
        "shipping_total": _dp(shipping_total / HUNDRED),
        "shipping_tax": _dp(shipping_tax / HUNDRED),
        "cart_tax": _dp(cart_tax / HUNDRED),
        "total": _dp(max(total, Decimal(0)) / HUNDRED),
        "total_tax": _dp((cart_tax + shipping_tax) / HUNDRED),
    }


def _order_meta(ids: _Ids, customer: Customer, extra: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    entries = [("is_vat_exempt", "yes" if customer.vat_exempt else "no")]
    if customer.vat_number:
        entries.append((customer.vat_number_meta_key, customer.vat_number))
    entries += list(extra)
    return [{"id": ids(), "key": key, "value": value} for key, value in entries]


def _item_meta(ids: _Ids, key: str, value: str) -> dict[str, Any]:
    return {"id": ids(), "key": key, "value": value, "display_key": key, "display_value": value}


def _round_tax_2dp(cart: Cart, stored: str) -> Decimal:
    """wc_round_tax_total on a stored raw tax: what the order item setters recompute."""
    return php_round(Decimal(stored), 2, half_down=cart.prices_include_tax)


def _line_item(cart: Cart, ids: _Ids, line: Line) -> dict[str, Any]:
    item_id = ids()
    total_raw = {rate_id: _raw(a / HUNDRED) for rate_id, a in line.taxes.items()}
    subtotal_raw = {rate_id: _raw(a / HUNDRED) for rate_id, a in line.subtotal_taxes.items()}
    if sum(map(Decimal, subtotal_raw.values()), Decimal(0)) < sum(
        map(Decimal, total_raw.values()), Decimal(0)
    ):
        subtotal_raw = dict(total_raw)  # WC_Order_Item_Product::set_taxes: subtotal never below total
    stored_total = _raw(line.total / HUNDRED)
    meta = [_item_meta(ids, key, value) for key, value in line.item.attributes]
    meta.append(_item_meta(ids, "_reduced_stock", str(line.item.quantity)))
    return {
        "id": item_id,
        "name": line.item.name,
        "product_id": line.item.product_id,
        "variation_id": line.item.variation_id,
        "quantity": line.item.quantity,
        "tax_class": line.item.tax_class,
        "subtotal": _dp(Decimal(_raw(line.subtotal / HUNDRED))),
        "subtotal_tax": _dp(sum((_round_tax_2dp(cart, r) for r in subtotal_raw.values()), Decimal(0))),
        "total": _dp(Decimal(stored_total)),
        "total_tax": _dp(sum((_round_tax_2dp(cart, r) for r in total_raw.values()), Decimal(0))),
        "taxes": [
            {"id": rate_id, "total": raw, "subtotal": subtotal_raw.get(rate_id, "0")}
            for rate_id, raw in total_raw.items()
        ],
        "meta_data": meta,
        "sku": line.item.sku,
        "price": _php_price(stored_total, line.item.quantity),
        "image": {"id": "", "src": ""},
        "parent_name": line.item.parent_name,
    }


def _charge_taxes(cart: Cart, charge: Charge) -> tuple[list[dict[str, Any]], Decimal]:
    raw = {rate_id: _raw(amount) for rate_id, amount in charge.raw_taxes.items()}
    taxes = [{"id": rate_id, "total": text, "subtotal": ""} for rate_id, text in raw.items()]
    return taxes, sum((_round_tax_2dp(cart, text) for text in raw.values()), Decimal(0))


def _shipping_line(cart: Cart, ids: _Ids, method: ShippingMethod, charge: Charge) -> dict[str, Any]:
    taxes, total_tax = _charge_taxes(cart, charge)
    return {
        "id": ids(),
        "method_title": method.title,
        "method_id": method.method_id,
        "instance_id": method.instance_id,
        "total": _dp(charge.total / HUNDRED),
        "total_tax": _dp(total_tax),
        "taxes": taxes,
        "tax_status": "taxable",
        "meta_data": [],
    }


def _fee_line(cart: Cart, ids: _Ids, fee: Fee, charge: Charge) -> dict[str, Any]:
    taxes, total_tax = _charge_taxes(cart, charge)
    return {
        "id": ids(),
        "name": fee.name,
        "tax_class": fee.tax_class,
        "tax_status": "taxable" if fee.taxable else "none",
        "amount": _raw(fee.amount),
        "total": _dp(charge.total / HUNDRED),
        "total_tax": _dp(total_tax),
        "taxes": taxes,
        "meta_data": [],
    }


def _coupon_line(cart: Cart, ids: _Ids, coupon: Coupon) -> dict[str, Any]:
    nominal = _php_number(coupon.amount)
    kind = "percent" if coupon.discount_type == "percent" else None
    info = f'[{coupon.id},"{coupon.code}",{"null" if kind is None else chr(34) + kind + chr(34)},{nominal}]'
    return {
        "id": ids(),
        "code": coupon.code,
        "discount": _raw(php_round(cart.coupon_amounts[coupon.code] / HUNDRED, 2, half_down=True)),
        "discount_tax": _raw(php_round(cart.coupon_taxes[coupon.code] / HUNDRED, 2, half_down=True)),
        "meta_data": [_item_meta(ids, "coupon_info", info)],
        "discount_type": coupon.discount_type,
        "nominal_amount": nominal,
        "free_shipping": False,
    }


def _tax_lines(cart: Cart, ids: _Ids) -> list[dict[str, Any]]:
    item_taxes = _merged((line.taxes for line in cart.lines), cart.round_line_tax)
    shipping_taxes = _merged(s.taxes for s in cart.shipping)
    fee_taxes = _merged(f.taxes for f in cart.fees)  # unrounded: WC_Cart::get_tax_amount adds them raw
    rate_ids = list(dict.fromkeys([*item_taxes, *shipping_taxes, *fee_taxes]))
    by_id = {rate.id: rate for rate in cart.rates}
    lines = []
    for rate_id in rate_ids:
        rate = by_id[rate_id]
        tax_total = (item_taxes.get(rate_id, Decimal(0)) + fee_taxes.get(rate_id, Decimal(0))) / HUNDRED
        lines.append(
            {
                "id": ids(),
                "rate_code": rate.rate_code,
                "rate_id": rate.id,
                "label": rate.name,
                "compound": rate.compound,
                "tax_total": _dp(Decimal(_raw(tax_total))),
                "shipping_tax_total": _dp(shipping_taxes.get(rate_id, Decimal(0)) / HUNDRED),
                "rate_percent": _php_number(rate.percent),
                "meta_data": [],
            }
        )
    return lines


def _links(order_id: int, customer_id: int) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": [{"href": f"{SHOP_URL}/wp-json/wc/v3/orders/{order_id}"}],
        "collection": [{"href": f"{SHOP_URL}/wp-json/wc/v3/orders"}],
    }
    if customer_id:
        links["customer"] = [{"href": f"{SHOP_URL}/wp-json/wc/v3/customers/{customer_id}"}]
    return links


# --- Random carts, for the sandbox shop, the chaos suite and the VAT benchmark --------------------

_PRICES = ("0.00", "0.99", "1.25", "2.50", "3.33", "4.95", "6.49", "8.95", "12.40", "19.99", "24.50", "29.95")
_SHIPPING_COSTS = ("0.00", "2.50", "4.95", "6.95", "12.50")


def random_order(rng: random.Random, *, order_id: int, created_at: datetime) -> dict[str, Any]:
    """A plausible paid order for a Dutch shop: mixed rates, coupons, shipping and fees.

    Deterministic for a seeded `rng`. A mix of consumers at home, OSS consumers in DE and BE,
    EU businesses with a VAT number (reverse charge) and customers outside the EU (export).
    """
    customer, rates = _random_customer(rng, order_id)
    # Reduced rates abroad would need OSS rates the administration may not have; keep them home.
    classes = ("", "", "", "reduced-rate", "zero-rate") if customer.country == "NL" else ("",)
    items = [
        CartItem(
            name=f"Artikel {order_id}-{n}",
            price=_random_price(rng),
            quantity=rng.choice((1, 1, 1, 2, 3, 4, 7)),
            tax_class=rng.choice(classes),
            taxable=rng.random() > 0.03,
            sku=f"SKU-{order_id}-{n}",
            product_id=1000 + n,
        )
        for n in range(rng.randint(1, 5))
    ]
    coupons = [_random_coupon(rng, n) for n in range(rng.choice((0, 0, 1, 1, 2)))]
    shipping = [
        ShippingMethod(f"Verzendmethode {n + 1}", Decimal(rng.choice(_SHIPPING_COSTS)))
        for n in range(rng.choice((0, 1, 1, 1, 2)))
    ]
    fees = [_random_fee(rng, n) for n in range(rng.choice((0, 0, 0, 1, 2)))]
    return build_order(
        order_id=order_id,
        customer=customer,
        items=items,
        coupons=coupons,
        shipping=shipping,
        fees=fees,
        prices_include_tax=rng.random() < 0.5,
        tax_rates=rates,
        created_at=created_at,
        paid_at=created_at + timedelta(minutes=1),
        completed_at=created_at + timedelta(days=1),
        transaction_id=f"tr_{order_id}",
    )


def _random_price(rng: random.Random) -> Decimal:
    if rng.random() < 0.5:
        return Decimal(rng.choice(_PRICES))
    return Decimal(rng.randint(1, 25000)) / HUNDRED


def _random_coupon(rng: random.Random, n: int) -> Coupon:
    if rng.random() < 0.5:
        return Coupon(
            f"procent{n}", "percent", Decimal(rng.choice(("5", "10", "12.5", "15", "25", "33", "50"))), n + 1
        )
    return Coupon(f"korting{n}", "fixed_cart", Decimal(rng.randint(1, 3000)) / HUNDRED, n + 1)


def _random_fee(rng: random.Random, n: int) -> Fee:
    if rng.random() < 0.5:
        return Fee(f"Toeslag {n + 1}", Decimal(rng.randint(1, 500)) / HUNDRED, taxable=rng.random() > 0.1)
    return Fee(f"Kassakorting {n + 1}", -Decimal(rng.randint(1, 2000)) / HUNDRED)


def _random_customer(rng: random.Random, order_id: int) -> tuple[Customer, tuple[WooTaxRate, ...]]:
    kind = rng.choices(("nl", "oss", "business", "export"), weights=(70, 15, 10, 5))[0]
    registered = order_id if rng.random() < 0.5 else 0
    common: dict[str, Any] = {
        "first_name": "Klant",
        "last_name": str(order_id),
        "email": f"klant{order_id}@example.com",
    }
    if kind == "oss":
        return Customer(**common, country=rng.choice(("DE", "BE")), customer_id=registered), OSS_SHOP_RATES
    if kind == "business":
        company = f"Bedrijf {order_id} GmbH"
        vat_number = f"DE{100000000 + order_id}"
        customer = Customer(
            **common,
            company=company,
            country="DE",
            vat_number=vat_number,
            vat_exempt=True,
            customer_id=registered,
        )
        return customer, DUTCH_SHOP_RATES
    if kind == "export":
        return Customer(
            **common, country=rng.choice(("US", "CH", "NO", "GB")), customer_id=registered
        ), DUTCH_SHOP_RATES
    return Customer(**common, customer_id=registered), OSS_SHOP_RATES
