"""WooCommerce REST v3 resources as woobird reads them: money as Decimal, dates as aware UTC.

WooCommerce mixes money types: `dp`-decimal strings for totals (2 by default, `"24.750000"` with
`?dp=6`), raw strings for `taxes[].total` (`"5.208"` on 9.9, rounded to `dp` since 10.0) and coupon
amounts, JSON numbers for `price` and `rate_percent`. Every one of them goes through `str()` before
`Decimal`, so no float ever touches an amount, and an amount that is a whole number of cents is
read as exactly that (`"24.750000"` and `"24.75"` are both 24.75), so the precision the shop was
asked for changes no printed figure.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {str(value)[:40]!r}") from exc
    # No shop sells for a trillion; past that, cents no longer fit Decimal's 28 digits safely.
    # The exponent is read before any arithmetic: abs() of "1e999999999" overflows the context.
    if not amount.is_finite() or amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise ValueError(f"not a plausible amount: {str(value)[:40]}")
    cents = amount.quantize(CENT)
    return cents if cents == amount else amount


def _to_utc(value: Any) -> Any:
    """WooCommerce's `*_gmt` fields are UTC without an offset; make them aware."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _unescape(value: Any) -> Any:
    return html.unescape(value) if isinstance(value, str) else value


MAX_AMOUNT_DIGITS = 12
CENT = Decimal("0.01")
# WooCommerce ids are WordPress post ids: BIGINT UNSIGNED, in practice far below 2**63.
WooId = Annotated[int, Field(gt=0, lt=2**63)]
Money = Annotated[Decimal, BeforeValidator(_to_decimal)]
UtcDateTime = Annotated[datetime | None, BeforeValidator(_to_utc)]
Text = Annotated[str, BeforeValidator(_unescape)]


class _Resource(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Meta(_Resource):
    key: str = ""
    value: Any = None


class Address(_Resource):
    first_name: Text = ""
    last_name: Text = ""
    company: Text = ""
    address_1: Text = ""
    address_2: Text = ""
    city: Text = ""
    state: str = ""
    postcode: str = ""
    country: str = ""
    email: str | None = None
    phone: str = ""


class LineTax(_Resource):
    """One rate's share of a line's tax: the raw, unrounded value WooCommerce stored."""

    id: int
    total: Money = Decimal(0)
    subtotal: Money = Decimal(0)


class LineItem(_Resource):
    id: int
    name: Text = ""
    product_id: int = 0
    variation_id: int = 0
    quantity: Money = Decimal(1)
    tax_class: str = ""
    subtotal: Money = Decimal(0)
    subtotal_tax: Money = Decimal(0)
    total: Money = Decimal(0)
    total_tax: Money = Decimal(0)
    taxes: list[LineTax] = Field(default_factory=list)
    meta_data: list[Meta] = Field(default_factory=list)
    sku: str | None = ""
    price: Money = Decimal(0)
    parent_name: Text | None = None


class TaxLine(_Resource):
    id: int
    rate_code: str = ""
    rate_id: int
    label: Text = ""
    compound: bool = False
    tax_total: Money = Decimal(0)
    shipping_tax_total: Money = Decimal(0)
    rate_percent: Money | None = None


class ShippingLine(_Resource):
    id: int
    method_title: Text = ""
    method_id: str = ""
    total: Money = Decimal(0)
    total_tax: Money = Decimal(0)
    taxes: list[LineTax] = Field(default_factory=list)
    meta_data: list[Meta] = Field(default_factory=list)


class FeeLine(_Resource):
    id: int
    name: Text = ""
    tax_class: str = ""
    tax_status: str = "taxable"
    total: Money = Decimal(0)
    total_tax: Money = Decimal(0)
    taxes: list[LineTax] = Field(default_factory=list)
    meta_data: list[Meta] = Field(default_factory=list)


class CouponLine(_Resource):
    id: int
    code: str = ""
    discount: Money = Decimal(0)
    discount_tax: Money = Decimal(0)


class RefundSummary(_Resource):
    """The entry under an order's `refunds[]`: total is negative there."""

    id: WooId
    reason: str | None = ""
    total: Money = Decimal(0)


class OrderHeader(_Resource):
    """What intake needs to decide about an order: the webhook never parses more than this."""

    id: WooId
    # Bounded as the ledger stores them (outside input: a reason quotes the status back).
    number: str = Field("", max_length=64)
    status: str = Field(max_length=64)
    date_modified_gmt: UtcDateTime = None
    date_paid_gmt: UtcDateTime = None
    date_created_gmt: UtcDateTime = None
    # Bounded: intake names it back when an open invoice's payment method decides (a gateway's slug).
    payment_method: str = Field("", max_length=200)
    total: Money = Decimal(0)
    refunds: list[RefundSummary] = Field(default_factory=list)

    @property
    def display_number(self) -> str:
        return self.number or str(self.id)


class Order(OrderHeader):
    parent_id: int = 0
    currency: str = "EUR"
    prices_include_tax: bool = False
    date_completed_gmt: UtcDateTime = None
    discount_total: Money = Decimal(0)
    discount_tax: Money = Decimal(0)
    shipping_total: Money = Decimal(0)
    shipping_tax: Money = Decimal(0)
    cart_tax: Money = Decimal(0)
    total_tax: Money = Decimal(0)
    customer_id: int = 0
    billing: Address = Field(default_factory=Address)
    shipping: Address = Field(default_factory=Address)
    payment_method_title: str = ""
    transaction_id: str = ""
    customer_note: str = ""
    meta_data: list[Meta] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)
    tax_lines: list[TaxLine] = Field(default_factory=list)
    shipping_lines: list[ShippingLine] = Field(default_factory=list)
    fee_lines: list[FeeLine] = Field(default_factory=list)
    coupon_lines: list[CouponLine] = Field(default_factory=list)

    def meta(self, key: str) -> Any:
        """The value of the first meta entry with this key, or None."""
        return next((entry.value for entry in self.meta_data if entry.key == key), None)


class Refund(_Resource):
    """`GET /orders/{id}/refunds/{rid}`: amounts on its lines are negative, `amount` is positive."""

    id: int
    date_created_gmt: UtcDateTime = None
    amount: Money = Decimal(0)
    reason: str | None = ""
    refunded_payment: bool = False
    meta_data: list[Meta] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)
    shipping_lines: list[ShippingLine] = Field(default_factory=list)
    fee_lines: list[FeeLine] = Field(default_factory=list)
    tax_lines: list[TaxLine] = Field(default_factory=list)


class PaymentGateway(_Resource):
    """One of the shop's payment methods (`GET /payment_gateways`): its id is what orders carry."""

    id: str
    title: str = ""
    enabled: bool = False


class Webhook(_Resource):
    id: int
    name: str = ""
    status: str
    topic: str
    delivery_url: str = ""


class OrderNote(_Resource):
    """A note on an order (`/orders/{id}/notes`); `customer_note` ones were e-mailed to the customer."""

    id: int
    note: str = ""
    customer_note: bool = False
    author: str = ""
    date_created_gmt: Annotated[datetime | None, BeforeValidator(_to_utc)] = None


class Product(_Resource):
    id: int
    name: Text = ""
    type: str = "simple"
    sku: str = ""
    regular_price: str = ""
    price: str = ""
    tax_class: str = ""
    tax_status: str = "taxable"
    variations: list[int] = Field(default_factory=list)
    parent_id: int = 0
