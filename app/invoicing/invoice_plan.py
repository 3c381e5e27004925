"""What an invoice plan is: its lines, the options it follows, the refusal when there is none,
the words it puts on the invoice, and the working state (`PlanContext`) while `plan.py` makes one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from app.constants import INVOICE_REFERENCE_PREFIX, VAT_NUMBER_META_KEYS
from app.i18n import Message
from app.invoicing.contact import PlanContact
from app.invoicing.reference import TaxRate
from app.invoicing.vat import OrderVat, RateBook, Treatment
from app.woocommerce.models import Order

LineKind = Literal["product", "shipping", "fee", "discount", "rounding", "vat_correction"]

# Words on the invoice; the customer and the bookkeeper read Dutch.
SHIPPING_PREFIX = "Verzending: "
DISCOUNT_LABEL = "Korting"
SURCHARGE_LABEL = "Prijscorrectie"
FEE_FALLBACK = "Toeslag"
ROUNDING_LABEL = "Afronding (verschil met ordertotaal)"
VAT_CORRECTION_LABEL = "Btw-afronding"
VAT_COUNTER_LABEL = "Btw-afronding, tegenboeking"


@dataclass(frozen=True, slots=True)
class PlanLine:
    description: str
    quantity: Decimal
    price: Decimal  # unit price including VAT, whole cents
    tax_rate_id: str
    ledger_account_id: str | None  # None: Moneybird's default revenue account
    kind: LineKind
    product_id: str | None = None

    @property
    def total(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class PlanOptions:
    tax_rate_overrides: Mapping[str, str] = field(default_factory=dict)
    ledger_account_id: str | None = None
    shipping_ledger_account_id: str | None = None
    workflow_id: str | None = None
    document_style_id: str | None = None
    exact_vat: bool = False
    vat_number_meta_keys: tuple[str, ...] = VAT_NUMBER_META_KEYS
    timezone: str = "Europe/Amsterdam"
    # SKU → Moneybird product id, from `woobird products` (lines without a match carry no product).
    products: Mapping[str, str] = field(default_factory=dict)
    # An open invoice (OPEN_INVOICE_PAYMENT_METHODS): booked before payment, dated when ordered.
    unpaid: bool = False
    # What every reference starts with: `WooCommerce #` for connection 1, the connection's own for
    # another (app.plan_options), so two shops booking into one administration never share one.
    reference_prefix: str = INVOICE_REFERENCE_PREFIX


class PlanRefused(Exception):
    """The order cannot be booked as configured. Its text is meant for the bookkeeper."""

    def __init__(self, order_id: int, reason: str, fix: str, *, order_number: str | None = None) -> None:
        self.order_id = order_id
        self.order_number = order_number or str(order_id)
        self.reason = reason
        self.fix = fix
        super().__init__(
            Message(
                "Order #%(order)s was not booked: %(reason)s. To fix: %(fix)s.",
                order=self.order_number,
                reason=reason,
                fix=fix,
            )
        )


@dataclass(frozen=True, slots=True)
class InvoicePlan:
    order_id: int
    order_number: str
    reference: str
    invoice_date: date
    currency: str
    prices_are_incl_tax: bool
    lines: tuple[PlanLine, ...]
    contact: PlanContact
    total: Decimal  # what the customer paid: the order total
    shop_vat: Mapping[str, Decimal]  # Moneybird tax rate id → VAT the shop charged
    treatment: Treatment
    workflow_id: str | None
    document_style_id: str | None
    payment_date: date
    payment_reference: str
    tax_rates: Mapping[str, TaxRate]  # every rate a line uses, by id
    notes: tuple[str, ...] = ()

    @property
    def lines_total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))


@dataclass
class PlanContext:
    order: Order
    vat: OrderVat
    book: RateBook
    product_revenue_account: str | None
    other_revenue_account: str | None
    products: Mapping[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    used_rates: dict[str, TaxRate] = field(default_factory=dict)

    def line(
        self,
        description: str,
        quantity: Decimal,
        price: Decimal,
        rate: TaxRate,
        kind: LineKind,
        *,
        product_id: str | None = None,
    ) -> PlanLine:
        self.used_rates[rate.id] = rate
        account = (
            self.product_revenue_account if kind in ("product", "discount") else self.other_revenue_account
        )
        return PlanLine(description, quantity, price, rate.id, account, kind, product_id)
