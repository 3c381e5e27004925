"""WooCommerce's cart totals (classic checkout): what a customer buys, and the amounts
`WC_Cart_Totals` works out for it, cent quirks included.

woobird's tests, the built-in sandbox shop and the chaos suite need orders whose numbers add up
the way a real shop's do. This module re-derives them with WooCommerce's rules (`WC_Cart_Totals`,
`WC_Discounts`, `WC_Tax`) as described in the reference notes; `checkout` turns the result into
the order document:

- item amounts are worked in cents; each line's tax per rate is rounded to a cent (half-up when
  prices exclude VAT, half-down when they include it), the raw tax stays in `taxes[]`;
- prices including VAT: the VAT is carved out of the gross price, the net stays unrounded;
- coupons in the order percent → fixed cart; percent = floor per line plus 1-cent remainders;
  fixed cart = floor(amount ÷ units) per unit, repeated, then 1-cent remainders;
- shipping tax is computed in euros by the shipping method and rounded half-up;
- a negative fee takes its tax from every tax class in proportion to the cart's costs.

Amounts are Decimal. Everything is deterministic given the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from typing import Literal

HUNDRED = Decimal(100)


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
class ShopRefundEntry:
    id: int
    total: Decimal  # negative, as in `refunds[]`
    reason: str = ""


# --- PHP rounding, as WooCommerce relies on it ------------------------------------------------------


def php_round(value: Decimal, places: int = 0, *, half_down: bool = False) -> Decimal:
    """PHP's round(): ties away from zero, or towards zero with PHP_ROUND_HALF_DOWN."""
    return value.quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_DOWN if half_down else ROUND_HALF_UP
    )


def _precise(value: Decimal) -> Decimal:
    """WC_Tax::round: taxes are kept to 6 decimals of the unit they were computed in."""
    return php_round(value, 6)


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
class Line:
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
class Charge:
    """A shipping or fee line while it is computed; amounts in cents."""

    total: Decimal
    tax_class: str
    taxable: bool
    taxes: dict[int, Decimal] = field(default_factory=dict)
    raw_taxes: dict[int, Decimal] = field(default_factory=dict)  # euros, as stored


@dataclass
class Cart:
    rates: tuple[WooTaxRate, ...]
    country: str
    base_country: str
    prices_include_tax: bool
    taxes_apply: bool
    coupon_sort: Literal["unit_price", "line_price_times_quantity"]
    lines: list[Line] = field(default_factory=list)
    coupon_discounts: dict[str, dict[int, Decimal]] = field(default_factory=dict)
    coupon_amounts: dict[str, Decimal] = field(default_factory=dict)
    coupon_taxes: dict[str, Decimal] = field(default_factory=dict)
    shipping: list[Charge] = field(default_factory=list)
    fees: list[Charge] = field(default_factory=list)

    def round_line_tax(self, cents: Decimal) -> Decimal:
        return php_round(cents, half_down=self.prices_include_tax)

    def rates_for(self, tax_class: str, *, country: str | None = None) -> list[WooTaxRate]:
        return _matching_rates(self.rates, tax_class=tax_class, country=country or self.country)


def _add_items(cart: Cart, items: Sequence[CartItem], *, vat_exempt: bool) -> None:
    for item in items:
        rates = cart.rates_for(item.tax_class) if item.taxable else []
        line = Line(item, rates, item.price * HUNDRED * item.quantity, cart.prices_include_tax)
        if line.incl and item.taxable:
            base = cart.rates_for(item.tax_class, country=cart.base_country)
            if vat_exempt:
                base_taxes = _calc_tax(line.price, base, inclusive=True)
                line.price = php_round(line.price - sum(base_taxes.values(), Decimal(0)))
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


def _discounted_cents(line: Line) -> Decimal:
    return abs(php_round(line.price - line.discount))


def _give(cart: Cart, code: str, index: int, amount: Decimal) -> None:
    cart.lines[index].discount += amount
    cart.coupon_discounts[code][index] += amount


def _apply_coupons(cart: Cart, coupons: Sequence[Coupon]) -> None:
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


def _sort_key(cart: Cart, index: int) -> Decimal:
    line = cart.lines[index]
    if cart.coupon_sort == "unit_price":
        return line.price / line.item.quantity if line.item.quantity else Decimal(0)
    return line.price * line.item.quantity


def _percent(cart: Cart, coupon: Coupon, eligible: list[int]) -> None:
    total_discount = Decimal(0)
    cart_total = Decimal(0)
    for i in eligible:
        line = cart.lines[i]
        price = php_round(line.price)
        discount = (price * coupon.amount / HUNDRED).to_integral_value(rounding=ROUND_FLOOR)
        discount = php_round(min(_discounted_cents(line), discount), half_down=True)
        cart_total += price
        total_discount += discount
        _give(cart, coupon.code, i, discount)
    whole_cart = php_round(cart_total * coupon.amount / HUNDRED, half_down=True)
    if total_discount < whole_cart:
        _remainder(cart, coupon.code, eligible, whole_cart - total_discount)


def _fixed_cart(cart: Cart, code: str, eligible: list[int], amount: Decimal) -> Decimal:
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


def _remainder(cart: Cart, code: str, eligible: list[int], amount: Decimal) -> Decimal:
    given = Decimal(0)
    for i in eligible:
        for _ in range(cart.lines[i].item.quantity):
            cent = min(_discounted_cents(cart.lines[i]), Decimal(1))
            given += cent
            _give(cart, code, i, cent)
            if given >= amount:
                return given
    return given


def _coupon_tax(cart: Cart, code: str) -> None:
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


def _line_totals(cart: Cart) -> None:
    for line in cart.lines:
        line.total = line.price - line.discount
        if cart.taxes_apply and line.item.taxable:
            line.taxes = _calc_tax(line.total, line.rates, inclusive=line.incl)
            if line.incl:
                line.total -= sum(line.taxes.values(), Decimal(0))


def _shipping_rates(cart: Cart) -> list[WooTaxRate]:
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


def _add_shipping(cart: Cart, methods: Sequence[ShippingMethod]) -> None:
    rates = _shipping_rates(cart) if cart.taxes_apply else []
    for method in methods:
        raw = _calc_tax(method.cost, rates, inclusive=False) if method.taxable else {}
        charge = Charge(
            total=method.cost * HUNDRED, tax_class="inherit", taxable=method.taxable, raw_taxes=raw
        )
        charge.taxes = {rate_id: php_round(amount * HUNDRED) for rate_id, amount in raw.items()}
        cart.shipping.append(charge)


def items_total(cart: Cart) -> Decimal:
    return sum((php_round(line.total) for line in cart.lines), Decimal(0))


def _add_fees(cart: Cart, fees: Sequence[Fee]) -> None:
    running = Decimal(0)
    shipping_total = sum((s.total for s in cart.shipping), Decimal(0))
    for fee in fees:
        total = fee.amount * HUNDRED
        if total < 0:
            # A negative fee may not take the order below zero.
            total = max(total, -php_round(items_total(cart) + running + shipping_total))
        running += total
        charge = Charge(total=total, tax_class=fee.tax_class, taxable=fee.taxable)
        if cart.taxes_apply:
            if total < 0:
                charge.taxes = _negative_fee_taxes(cart, total)
            elif fee.taxable:
                charge.taxes = _calc_tax(total, cart.rates_for(fee.tax_class), inclusive=False)
        charge.raw_taxes = {rate_id: amount / HUNDRED for rate_id, amount in charge.taxes.items()}
        cart.fees.append(charge)


def _negative_fee_taxes(cart: Cart, total: Decimal) -> dict[int, Decimal]:
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


def cart_totals(
    *,
    customer: Customer,
    items: Sequence[CartItem],
    coupons: Sequence[Coupon],
    shipping: Sequence[ShippingMethod],
    fees: Sequence[Fee],
    prices_include_tax: bool,
    tax_rates: Sequence[WooTaxRate],
    base_country: str,
    coupon_sort: Literal["unit_price", "line_price_times_quantity"],
) -> Cart:
    """The cart after WC_Cart_Totals: items, coupons, line totals, shipping, then fees."""
    cart = Cart(
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
    return cart
