"""WooCommerce's classic-checkout arithmetic: a cart in, an order document (REST v3 shape) out.

woobird's tests, the built-in sandbox shop and the chaos suite need orders whose numbers add up
the way a real shop's do, cent quirks included. This module re-derives them with WooCommerce's
rules (`WC_Cart_Totals`, `WC_Discounts`, `WC_Tax`, the order item setters and the REST
formatting) as described in the reference notes:

- item amounts are worked in cents; each line's tax per rate is rounded to a cent (half-up when
  prices exclude VAT, half-down when they include it), the raw tax stays in `taxes[]`;
- prices including VAT: the VAT is carved out of the gross price, the net stays unrounded;
- coupons in the order percent → fixed cart; percent = floor per line plus 1-cent remainders;
  fixed cart = floor(amount ÷ units) per unit, repeated, then 1-cent remainders;
- shipping tax is computed in euros by the shipping method and rounded half-up;
- a negative fee takes its tax from every tax class in proportion to the cart's costs.

Amounts are Decimal. The only floats are the two fields WooCommerce itself emits as PHP floats
(`price`, `rate_percent`), produced the way PHP produces them so the documents match real ones.
Everything is deterministic given the inputs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HUNDRED = Decimal(100)
SHOP_URL = "https://winkel.example.nl"
WOOCOMMERCE_VERSION = "9.8.5"


# --- What a shop is configured with ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WooTaxRate:
    """A row of WooCommerce → Settings → Tax."""

    id: int
    percent: Decimal
    name: str
    country: str = ""  # "" = every country
    state: str = ""
    tax_class: str = ""  # "" = standard
    priority: int = 1
    compound: bool = False
    shipping: bool = True

    @property
    def rate_code(self) -> str:
        parts = [self.country, self.state, self.name or "TAX", str(self.priority)]
        return "-".join(part for part in parts if part).upper()


NL_STANDARD = WooTaxRate(id=1, percent=Decimal(21), name="BTW", country="NL")
NL_REDUCED = WooTaxRate(
    id=2, percent=Decimal(9), name="BTW verlaagd", country="NL", tax_class="reduced-rate", shipping=False
)
NL_ZERO = WooTaxRate(
    id=3, percent=Decimal(0), name="BTW 0%", country="NL", tax_class="zero-rate", shipping=False
)
DE_STANDARD = WooTaxRate(id=11, percent=Decimal(19), name="MwSt", country="DE")
DE_REDUCED = WooTaxRate(
    id=12, percent=Decimal(7), name="MwSt ermäßigt", country="DE", tax_class="reduced-rate"
)
BE_STANDARD = WooTaxRate(id=21, percent=Decimal(21), name="BTW", country="BE")
BE_REDUCED = WooTaxRate(
    id=22, percent=Decimal(6), name="BTW verlaagd", country="BE", tax_class="reduced-rate"
)

DUTCH_SHOP_RATES: tuple[WooTaxRate, ...] = (NL_STANDARD, NL_REDUCED)
# A shop registered for OSS: Dutch rates plus the destination rates of two neighbours.
OSS_SHOP_RATES: tuple[WooTaxRate, ...] = (
    NL_STANDARD, NL_REDUCED, NL_ZERO, DE_STANDARD, DE_REDUCED, BE_STANDARD, BE_REDUCED,
)  # fmt: skip
# WooCommerce → Settings → Tax → "Additional tax classes", in their listed order.
TAX_CLASSES: tuple[str, ...] = ("reduced-rate", "zero-rate")


@dataclass(frozen=True, slots=True)
class CartItem:
    name: str
    price: Decimal  # unit price as entered: including VAT when the shop enters prices that way
    quantity: int = 1
    tax_class: str = ""
    taxable: bool = True
    sku: str = ""
    product_id: int = 0
    variation_id: int = 0
    parent_name: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # variation attributes, e.g. ("pa_kleur", "rood")


@dataclass(frozen=True, slots=True)
class Coupon:
    code: str
    discount_type: Literal["percent", "fixed_cart"]
    amount: Decimal
    id: int = 0


@dataclass(frozen=True, slots=True)
class ShippingMethod:
    title: str
    cost: Decimal  # excluding VAT, as flat-rate costs are entered
    method_id: str = "flat_rate"
    instance_id: str = "1"
    taxable: bool = True


@dataclass(frozen=True, slots=True)
class Fee:
    name: str
    amount: Decimal  # excluding VAT; negative for the "cart discount" some plugins add
    taxable: bool = True
    tax_class: str = ""


@dataclass(frozen=True, slots=True)
class Customer:
    first_name: str
    last_name: str
    email: str
    company: str = ""
    address_1: str = ""
    address_2: str = ""
    city: str = ""
    postcode: str = ""
    country: str = "NL"
    state: str = ""
    phone: str = ""
    customer_id: int = 0  # 0 = guest
    vat_number: str = ""
    vat_number_meta_key: str = "_billing_vat_number"
    vat_exempt: bool = False
    shipping_country: str | None = None  # None: ships to the billing address


@dataclass(frozen=True, slots=True)
class RefundSummary:
    id: int
    total: Decimal  # negative, as in `refunds[]`
    reason: str = ""


# --- PHP rounding, as WooCommerce relies on it ------------------------------------------------------


def _round(value: Decimal, places: int = 0, *, half_down: bool = False) -> Decimal:
    """PHP's round(): ties away from zero, or towards zero with PHP_ROUND_HALF_DOWN."""
    return value.quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_DOWN if half_down else ROUND_HALF_UP
    )


def _precise(value: Decimal) -> Decimal:
    """WC_Tax::round: taxes are kept to 6 decimals of the unit they were computed in."""
    return _round(value, 6)


def _raw(value: Decimal) -> str:
    """wc_format_decimal of a float: 6 decimals, trailing zeros trimmed (`5.208`, `0`)."""
    text = f"{_round(value, 6):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _dp(value: Decimal) -> str:
    """REST money formatting: exactly two decimals."""
    return f"{_round(value, 2):f}"


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


# --- Tax calculation (WC_Tax) -------------------------------------------------------------------


def _calc_tax(price: Decimal, rates: Sequence[WooTaxRate], *, inclusive: bool) -> dict[int, Decimal]:
    taxes = _inclusive_tax(price, rates) if inclusive else _exclusive_tax(price, rates)
    return {rate_id: _precise(amount) for rate_id, amount in taxes.items()}


def _exclusive_tax(price: Decimal, rates: Sequence[WooTaxRate]) -> dict[int, Decimal]:
    taxes = {rate.id: price * rate.percent / HUNDRED for rate in rates if not rate.compound}
    for rate in rates:
        if rate.compound:
            taxes[rate.id] = (price + sum(taxes.values(), Decimal(0))) * rate.percent / HUNDRED
    return taxes


def _inclusive_tax(price: Decimal, rates: Sequence[WooTaxRate]) -> dict[int, Decimal]:
    taxes: dict[int, Decimal] = {}
    non_compound_price = price
    for rate in reversed([r for r in rates if r.compound]):
        tax = non_compound_price - non_compound_price / (1 + rate.percent / HUNDRED)
        taxes[rate.id] = tax
        non_compound_price -= tax
    regular = [r for r in rates if not r.compound]
    regular_factor = 1 + sum((r.percent for r in regular), Decimal(0)) / HUNDRED
    for rate in regular:
        share = rate.percent / HUNDRED / regular_factor
        taxes[rate.id] = price - (price - share * non_compound_price)
    return taxes


def _matching_rates(
    rates: Iterable[WooTaxRate], *, tax_class: str, country: str, for_shipping: bool = False
) -> list[WooTaxRate]:
    """One rate per priority, country-specific rates before catch-alls (WC_Tax::find_rates)."""
    found: dict[int, WooTaxRate] = {}
    candidates = [
        r
        for r in rates
        if r.tax_class == tax_class and r.country in (country, "") and (r.shipping or not for_shipping)
    ]
    for rate in sorted(candidates, key=lambda r: (r.priority, r.country == "")):
        found.setdefault(rate.priority, rate)
    return [found[p] for p in sorted(found)]


# --- The cart ------------------------------------------------------------------------------------


@dataclass
class _Line:
    """One cart item while WC_Cart_Totals works on it; amounts in cents."""

    item: CartItem
    rates: list[WooTaxRate]
    price: Decimal
    incl: bool
    subtotal: Decimal = Decimal(0)
    subtotal_taxes: dict[int, Decimal] = field(default_factory=dict)
    discount: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    taxes: dict[int, Decimal] = field(default_factory=dict)


@dataclass
class _Charge:
    """A shipping or fee line while it is computed; amounts in cents."""

    total: Decimal
    tax_class: str
    taxable: bool
    taxes: dict[int, Decimal] = field(default_factory=dict)
    raw_taxes: dict[int, Decimal] = field(default_factory=dict)  # euros, as stored


@dataclass
class _Cart:
    rates: tuple[WooTaxRate, ...]
    country: str
    base_country: str
    prices_include_tax: bool
    taxes_apply: bool
    coupon_sort: Literal["unit_price", "line_price_times_quantity"]
    lines: list[_Line] = field(default_factory=list)
    coupon_discounts: dict[str, dict[int, Decimal]] = field(default_factory=dict)
    coupon_amounts: dict[str, Decimal] = field(default_factory=dict)
    coupon_taxes: dict[str, Decimal] = field(default_factory=dict)
    shipping: list[_Charge] = field(default_factory=list)
    fees: list[_Charge] = field(default_factory=list)

    def round_line_tax(self, cents: Decimal) -> Decimal:
        return _round(cents, half_down=self.prices_include_tax)

    def rates_for(self, tax_class: str, *, country: str | None = None) -> list[WooTaxRate]:
        return _matching_rates(self.rates, tax_class=tax_class, country=country or self.country)


def _add_items(cart: _Cart, items: Sequence[CartItem], *, vat_exempt: bool) -> None:
    for item in items:
        rates = cart.rates_for(item.tax_class) if item.taxable else []
        line = _Line(item, rates, item.price * HUNDRED * item.quantity, cart.prices_include_tax)
        if line.incl and item.taxable:
            base = cart.rates_for(item.tax_class, country=cart.base_country)
            if vat_exempt:
                base_taxes = _calc_tax(line.price, base, inclusive=True)
                line.price = _round(line.price - sum(base_taxes.values(), Decimal(0)))
                line.incl = False
            elif base != rates:
                base_taxes = _calc_tax(line.price, base, inclusive=True)
                net = line.price - sum(base_taxes.values(), Decimal(0))
                line.price = net + sum(_calc_tax(net, rates, inclusive=False).values(), Decimal(0))
        line.subtotal = line.price
        if cart.taxes_apply and item.taxable:
            line.subtotal_taxes = _calc_tax(line.subtotal, rates, inclusive=line.incl)
            if line.incl:
                line.subtotal -= sum(line.subtotal_taxes.values(), Decimal(0))
        cart.lines.append(line)


# --- Coupons (WC_Discounts) ---------------------------------------------------------------------


def _discounted_cents(line: _Line) -> Decimal:
    return abs(_round(line.price - line.discount))


def _give(cart: _Cart, code: str, index: int, amount: Decimal) -> None:
    cart.lines[index].discount += amount
    cart.coupon_discounts[code][index] += amount


def _apply_coupons(cart: _Cart, coupons: Sequence[Coupon]) -> None:
    kinds = {"percent": 2, "fixed_cart": 3}
    ordered = sorted(
        enumerate(coupons),
        key=lambda pair: (kinds[pair[1].discount_type], pair[1].amount, -(pair[1].id or pair[0])),
    )
    order = sorted(range(len(cart.lines)), key=lambda i: _sort_key(cart, i), reverse=True)
    for _, coupon in ordered:
        cart.coupon_discounts[coupon.code] = dict.fromkeys(range(len(cart.lines)), Decimal(0))
        eligible = [
            i for i in order if _discounted_cents(cart.lines[i]) != 0 and cart.lines[i].item.quantity > 0
        ]
        if coupon.discount_type == "percent":
            _percent(cart, coupon, eligible)
        else:
            _fixed_cart(cart, coupon.code, eligible, coupon.amount * HUNDRED)
    for coupon in coupons:
        _coupon_tax(cart, coupon.code)


def _sort_key(cart: _Cart, index: int) -> Decimal:
    line = cart.lines[index]
    if cart.coupon_sort == "unit_price":
        return line.price / line.item.quantity if line.item.quantity else Decimal(0)
    return line.price * line.item.quantity


def _percent(cart: _Cart, coupon: Coupon, eligible: list[int]) -> None:
    total_discount = Decimal(0)
    cart_total = Decimal(0)
    for i in eligible:
        line = cart.lines[i]
        price = _round(line.price)
        discount = (price * coupon.amount / HUNDRED).to_integral_value(rounding=ROUND_FLOOR)
        discount = _round(min(_discounted_cents(line), discount), half_down=True)
        cart_total += price
        total_discount += discount
        _give(cart, coupon.code, i, discount)
    whole_cart = _round(cart_total * coupon.amount / HUNDRED, half_down=True)
    if total_discount < whole_cart:
        _remainder(cart, coupon.code, eligible, whole_cart - total_discount)


def _fixed_cart(cart: _Cart, code: str, eligible: list[int], amount: Decimal) -> Decimal:
    eligible = [i for i in eligible if _discounted_cents(cart.lines[i]) > 0]
    units = sum(cart.lines[i].item.quantity for i in eligible)
    if not units or not amount:
        return Decimal(0)
    per_unit = Decimal(abs(int(amount / units)))
    if per_unit > 0:
        given = Decimal(0)
        for i in eligible:
            discount = min(_discounted_cents(cart.lines[i]), per_unit * cart.lines[i].item.quantity)
            given += discount
            _give(cart, code, i, discount)
        if 0 < given < amount:
            given += _fixed_cart(cart, code, eligible, amount - given)
        return given
    return _remainder(cart, code, eligible, amount) if amount > 0 else Decimal(0)


def _remainder(cart: _Cart, code: str, eligible: list[int], amount: Decimal) -> Decimal:
    given = Decimal(0)
    for i in eligible:
        for _ in range(cart.lines[i].item.quantity):
            cent = min(_discounted_cents(cart.lines[i]), Decimal(1))
            given += cent
            _give(cart, code, i, cent)
            if given >= amount:
                return given
    return given


def _coupon_tax(cart: _Cart, code: str) -> None:
    amount = sum(cart.coupon_discounts.get(code, {}).values(), Decimal(0))
    tax = Decimal(0)
    if cart.taxes_apply:
        for i, discount in cart.coupon_discounts.get(code, {}).items():
            line = cart.lines[i]
            if line.item.taxable:
                item_tax = sum(_calc_tax(discount, line.rates, inclusive=line.incl).values(), Decimal(0))
                tax += item_tax
                if line.incl:
                    amount -= item_tax
    cart.coupon_amounts[code] = amount
    cart.coupon_taxes[code] = tax


# --- Line totals, shipping, fees ----------------------------------------------------------------


def _line_totals(cart: _Cart) -> None:
    for line in cart.lines:
        line.total = line.price - line.discount
        if cart.taxes_apply and line.item.taxable:
            line.taxes = _calc_tax(line.total, line.rates, inclusive=line.incl)
            if line.incl:
                line.total -= sum(line.taxes.values(), Decimal(0))


def _shipping_rates(cart: _Cart) -> list[WooTaxRate]:
    """Shipping tax class "based on cart items" (WC_Tax::get_shipping_tax_rates)."""
    classes = list(dict.fromkeys(line.item.tax_class for line in cart.lines if line.item.taxable))
    if not classes:
        return []
    matched: list[WooTaxRate] = []
    if len(classes) > 1 and "" not in classes:
        first = next((c for c in TAX_CLASSES if c in classes), None)
        if first is not None:
            matched = _matching_rates(cart.rates, tax_class=first, country=cart.country, for_shipping=True)
    elif len(classes) == 1:
        matched = _matching_rates(cart.rates, tax_class=classes[0], country=cart.country, for_shipping=True)
    return matched or _matching_rates(cart.rates, tax_class="", country=cart.country, for_shipping=True)


def _add_shipping(cart: _Cart, methods: Sequence[ShippingMethod]) -> None:
    rates = _shipping_rates(cart) if cart.taxes_apply else []
    for method in methods:
        raw = _calc_tax(method.cost, rates, inclusive=False) if method.taxable else {}
        charge = _Charge(
            total=method.cost * HUNDRED, tax_class="inherit", taxable=method.taxable, raw_taxes=raw
        )
        charge.taxes = {rate_id: _round(amount * HUNDRED) for rate_id, amount in raw.items()}
        cart.shipping.append(charge)


def _items_total(cart: _Cart) -> Decimal:
    return sum((_round(line.total) for line in cart.lines), Decimal(0))


def _add_fees(cart: _Cart, fees: Sequence[Fee]) -> None:
    running = Decimal(0)
    shipping_total = sum((s.total for s in cart.shipping), Decimal(0))
    for fee in fees:
        total = fee.amount * HUNDRED
        if total < 0:
            # A negative fee may not take the order below zero.
            total = max(total, -_round(_items_total(cart) + running + shipping_total))
        running += total
        charge = _Charge(total=total, tax_class=fee.tax_class, taxable=fee.taxable)
        if cart.taxes_apply:
            if total < 0:
                charge.taxes = _negative_fee_taxes(cart, total)
            elif fee.taxable:
                charge.taxes = _calc_tax(total, cart.rates_for(fee.tax_class), inclusive=False)
        charge.raw_taxes = {rate_id: amount / HUNDRED for rate_id, amount in charge.taxes.items()}
        cart.fees.append(charge)


def _negative_fee_taxes(cart: _Cart, total: Decimal) -> dict[int, Decimal]:
    """Spread a discount fee's tax over the tax classes in proportion to what each costs."""
    costs: dict[str, Decimal] = {}
    item_classes = [line.item.tax_class for line in cart.lines]
    charges: list[tuple[Decimal, bool, str]] = [
        (ln.total, ln.item.taxable, ln.item.tax_class) for ln in cart.lines
    ]
    charges += [(f.total, f.taxable, f.tax_class) for f in cart.fees]
    charges += [(s.total, s.taxable, s.tax_class) for s in cart.shipping]
    for amount, taxable, tax_class in charges:
        if amount < 0:
            continue
        key = (
            "non-taxable"
            if not taxable
            else (item_classes[0] if tax_class == "inherit" and item_classes else tax_class)
        )
        costs[key] = costs.get(key, Decimal(0)) + amount
    costs = {key: cost for key, cost in costs.items() if cost}
    whole = sum(costs.values(), Decimal(0))
    taxes: dict[int, Decimal] = {}
    if not whole:
        return taxes
    for tax_class, cost in costs.items():
        if tax_class == "non-taxable":
            continue
        for rate_id, amount in _calc_tax(
            total * cost / whole, cart.rates_for(tax_class), inclusive=False
        ).items():
            taxes[rate_id] = taxes.get(rate_id, Decimal(0)) + amount
    return taxes


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
    refunds: Sequence[RefundSummary] = (),
    meta: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The order WooCommerce's classic checkout would store for this cart, as `GET /orders/<id>`.

    `coupon_sort` picks the order in which coupon remainders are handed out: by unit price (as the
    reference notes describe) or by WooCommerce's own `sort_by_price`, which multiplies the line
    price by the quantity.
    """
    cart = _Cart(
        rates=tuple(tax_rates),
        country=(customer.shipping_country or customer.country) if shipping else customer.country,
        base_country=base_country,
        prices_include_tax=prices_include_tax,
        taxes_apply=not customer.vat_exempt,
        coupon_sort=coupon_sort,
    )
    _add_items(cart, items, vat_exempt=customer.vat_exempt)
    _apply_coupons(cart, coupons)
    _line_totals(cart)
    _add_shipping(cart, shipping)
    _add_fees(cart, fees)
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


def _money_fields(cart: _Cart) -> dict[str, str]:
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
    total = _round(_items_total(cart) + fees_total + shipping_total + sum(all_tax.values(), Decimal(0)))
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


def _round_tax_2dp(cart: _Cart, stored: str) -> Decimal:
    """wc_round_tax_total on a stored raw tax: what the order item setters recompute."""
    return _round(Decimal(stored), 2, half_down=cart.prices_include_tax)


def _line_item(cart: _Cart, ids: _Ids, line: _Line) -> dict[str, Any]:
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
        "image": {"id": 0, "src": ""},
        "parent_name": line.item.parent_name,
    }


def _charge_taxes(cart: _Cart, charge: _Charge) -> tuple[list[dict[str, Any]], Decimal]:
    raw = {rate_id: _raw(amount) for rate_id, amount in charge.raw_taxes.items()}
    taxes = [{"id": rate_id, "total": text, "subtotal": ""} for rate_id, text in raw.items()]
    return taxes, sum((_round_tax_2dp(cart, text) for text in raw.values()), Decimal(0))


def _shipping_line(cart: _Cart, ids: _Ids, method: ShippingMethod, charge: _Charge) -> dict[str, Any]:
    taxes, total_tax = _charge_taxes(cart, charge)
    return {
        "id": ids(),
        "method_title": method.title,
        "method_id": method.method_id,
        "instance_id": method.instance_id,
        "total": _dp(charge.total / HUNDRED),
        "total_tax": _dp(total_tax),
        "taxes": taxes,
        "meta_data": [],
    }


def _fee_line(cart: _Cart, ids: _Ids, fee: Fee, charge: _Charge) -> dict[str, Any]:
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


def _coupon_line(cart: _Cart, ids: _Ids, coupon: Coupon) -> dict[str, Any]:
    nominal = _php_number(coupon.amount)
    kind = "percent" if coupon.discount_type == "percent" else None
    info = f'[{coupon.id},"{coupon.code}",{"null" if kind is None else chr(34) + kind + chr(34)},{nominal}]'
    return {
        "id": ids(),
        "code": coupon.code,
        "discount": _raw(_round(cart.coupon_amounts[coupon.code] / HUNDRED, 2, half_down=True)),
        "discount_tax": _raw(_round(cart.coupon_taxes[coupon.code] / HUNDRED, 2, half_down=True)),
        "meta_data": [_item_meta(ids, "coupon_info", info)],
        "discount_type": coupon.discount_type,
        "nominal_amount": nominal,
        "free_shipping": False,
    }


def _tax_lines(cart: _Cart, ids: _Ids) -> list[dict[str, Any]]:
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
