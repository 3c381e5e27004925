"""The invoice woobird will create for a WooCommerce order, or the reason it will not.

`plan_invoice` is pure: an order and the administration's reference data in, a plan out. It reads
top to bottom like the rules it follows:

1. The order must be paid; the invoice is dated on the day it was paid (shop's time zone).
2. VAT treatment and tax rates come from `vat.py`: every line gets a Moneybird sales tax rate, or
   the order is refused with the setting that fixes it.
3. Prices are sent including VAT. Moneybird's total incl. VAT is then the sum of the gross lines
   under both ways it may round VAT, so every line is made a whole number of cents gross:
   - a product line at its price before coupons (`subtotal + subtotal_tax`); when that is not a
     whole number of cents per unit, the quantity is split (2 × 15.00 and 1 × 15.01);
   - one discount line per tax rate with the coupon codes, so discounts stay visible;
   - one line per shipping method and per fee at `total + total_tax`; a line WooCommerce taxed
     at several rates (a negative "cart discount" fee) is split into one line per rate.
4. Whatever still separates the lines from the order total becomes a visible rounding line.
5. With `exact_vat`, a pair of small correction lines moves the VAT per rate onto the shop's.

Amounts are Decimal throughout; `predict_totals` in `moneybird_arithmetic.py` says what Moneybird
will compute, and the plan records the VAT the shop charged per rate so differences show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import combinations_with_replacement
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.constants import INVOICE_REFERENCE_PREFIX
from app.invoicing.contact import PlanContact, plan_contact
from app.invoicing.moneybird_arithmetic import (
    CENT,
    ROUNDING_MODES,
    Rounding,
    net_of_gross,
    predict_totals,
    rate_totals,
    vat_of_gross,
)
from app.invoicing.reference import AdministrationReference, TaxRate
from app.invoicing.vat import ZERO, OrderVat, RateBook, Treatment, VatRefusal, order_vat, vat_number
from app.settings import Settings
from app.woocommerce.models import LineItem, Order

LineKind = Literal["product", "shipping", "fee", "discount", "rounding", "vat_correction"]

# Words on the invoice; the customer and the bookkeeper read Dutch.
SHIPPING_PREFIX = "Verzending: "
DISCOUNT_LABEL = "Korting"
SURCHARGE_LABEL = "Prijscorrectie"
FEE_FALLBACK = "Toeslag"
ROUNDING_LABEL = "Afronding (verschil met ordertotaal)"
VAT_CORRECTION_LABEL = "Btw-afronding"
VAT_COUNTER_LABEL = "Btw-afronding, tegenboeking"

DEFAULT_VAT_NUMBER_META_KEYS: tuple[str, ...] = tuple(
    Settings.model_fields["woocommerce_vat_number_meta_keys"].default
)
# A correction larger than this is not rounding; it would hide a real difference.
MAX_VAT_CORRECTION = Decimal("0.10")


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
    vat_number_meta_keys: tuple[str, ...] = DEFAULT_VAT_NUMBER_META_KEYS
    timezone: str = "Europe/Amsterdam"
    # SKU → Moneybird product id, from `woobird products` (lines without a match carry no product).
    products: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> PlanOptions:
        return cls(
            tax_rate_overrides=dict(settings.moneybird_tax_rates),
            ledger_account_id=settings.moneybird_ledger_account_id,
            shipping_ledger_account_id=settings.moneybird_shipping_ledger_account_id,
            workflow_id=settings.moneybird_workflow_id,
            document_style_id=settings.moneybird_document_style_id,
            exact_vat=settings.invoice_exact_vat,
            vat_number_meta_keys=tuple(settings.woocommerce_vat_number_meta_keys),
        )


class PlanRefused(Exception):
    """The order cannot be booked as configured. Its text is meant for the bookkeeper."""

    def __init__(self, order_id: int, reason: str, fix: str, *, order_number: str | None = None) -> None:
        self.order_id = order_id
        self.order_number = order_number or str(order_id)
        self.reason = reason
        self.fix = fix
        super().__init__(f"Order #{self.order_number} was not booked: {reason}. To fix: {fix}.")


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

    def predicted_total(self, rounding: Rounding) -> Decimal:
        return predict_totals(self, rounding)[0]

    def predicted_vat(self, rounding: Rounding) -> dict[str, Decimal]:
        return predict_totals(self, rounding)[1]

    def vat_deviation(self, rounding: Rounding) -> dict[str, Decimal]:
        """Moneybird's VAT minus the shop's, per tax rate id; zero where they agree."""
        predicted = self.predicted_vat(rounding)
        rate_ids = dict.fromkeys([*self.shop_vat, *predicted])
        return {
            rate_id: predicted.get(rate_id, Decimal(0)) - self.shop_vat.get(rate_id, Decimal(0))
            for rate_id in rate_ids
        }


def plan_invoice(order: Order, *, reference: AdministrationReference, options: PlanOptions) -> InvoicePlan:
    """The invoice for a paid order, or PlanRefused saying why not and what to change."""
    try:
        return _plan(order, reference, options)
    except VatRefusal as refusal:
        raise PlanRefused(order.id, refusal.reason, refusal.fix, order_number=order.display_number) from None


@dataclass
class _Context:
    order: Order
    vat: OrderVat
    book: RateBook
    product_ledger: str | None
    other_ledger: str | None
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
        ledger = self.product_ledger if kind in ("product", "discount") else self.other_ledger
        return PlanLine(description, quantity, price, rate.id, ledger, kind, product_id)


def _plan(order: Order, reference: AdministrationReference, options: PlanOptions) -> InvoicePlan:
    if order.total != order.total.quantize(CENT):
        raise PlanRefused(
            order.id,
            f"its total {order.total} is not a whole number of cents, and Moneybird prices have two decimals",
            "set WooCommerce's number of decimals to 2 (WooCommerce → Settings → General)",
            order_number=order.display_number,
        )
    paid_on = _payment_date(order, options.timezone)
    customer_vat_number = vat_number(order, options.vat_number_meta_keys)
    book = RateBook(reference, options.tax_rate_overrides)
    vat = order_vat(order, book=book, home_country=reference.country, customer_vat_number=customer_vat_number)
    product_ledger = _ledger(order, reference, options.ledger_account_id, "MONEYBIRD_LEDGER_ACCOUNT_ID")
    other_ledger = _ledger(
        order, reference, options.shipping_ledger_account_id, "MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID"
    )
    ctx = _Context(order, vat, book, product_ledger, other_ledger or product_ledger, options.products)

    lines = _product_lines(ctx)
    lines += _shipping_lines(ctx)
    lines += _fee_lines(ctx)
    lines += _rounding_line(ctx, lines)
    if options.exact_vat:
        lines += _vat_corrections(ctx, lines)
    if order.refunds:
        refunded = -sum((refund.total for refund in order.refunds), Decimal(0))
        ctx.notes.append(
            f"{len(order.refunds)} refund(s) totalling {refunded} are booked separately as credit "
            "invoices; this invoice is the original order"
        )
    for rate_id in vat.shop_vat:
        ctx.used_rates.setdefault(rate_id, _rate_by_id(reference, rate_id))

    return InvoicePlan(
        order_id=order.id,
        order_number=order.display_number,
        reference=f"{INVOICE_REFERENCE_PREFIX}{order.display_number}",
        invoice_date=paid_on,
        currency=order.currency.upper(),
        prices_are_incl_tax=True,
        lines=tuple(lines),
        contact=plan_contact(order, tax_number=customer_vat_number),
        total=order.total,
        shop_vat=dict(vat.shop_vat),
        treatment=vat.treatment,
        workflow_id=_workflow(order, reference, options.workflow_id),
        document_style_id=_document_style(order, reference, options.document_style_id),
        payment_date=paid_on,
        payment_reference=order.transaction_id,
        tax_rates=dict(ctx.used_rates),
        notes=tuple(ctx.notes),
    )


# --- 1. Paid, and when ---------------------------------------------------------------------------


def _payment_date(order: Order, timezone: str) -> date:
    if order.date_paid_gmt is None:
        raise PlanRefused(
            order.id,
            "WooCommerce has no payment date for it (date_paid), so it is not paid yet",
            "mark the order paid in WooCommerce (bank transfer and cash on delivery orders get a "
            "payment date when they are set to processing or completed)",
            order_number=order.display_number,
        )
    return local_date(order.date_paid_gmt, timezone)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar day in the shop's time zone: a payment at 23:30 UTC on 31 December is a
    January payment in Amsterdam, and VAT periods follow the local day."""
    try:
        return moment.astimezone(ZoneInfo(timezone)).date()
    except ZoneInfoNotFoundError:
        if timezone != "Europe/Amsterdam":
            raise
        return (moment.astimezone(UTC) + _amsterdam_offset(moment)).date()


def _amsterdam_offset(moment: datetime) -> timedelta:
    """CET/CEST by the EU rule (since 1996), for hosts without a time zone database."""
    utc = moment.astimezone(UTC)
    starts = _last_sunday(utc.year, 3).replace(hour=1, tzinfo=UTC)
    ends = _last_sunday(utc.year, 10).replace(hour=1, tzinfo=UTC)
    return timedelta(hours=2 if starts <= utc < ends else 1)


def _last_sunday(year: int, month: int) -> datetime:
    last = datetime(year, month + 1, 1, tzinfo=UTC) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


# --- 2. Ledger accounts, workflow, document style -------------------------------------------------


def _ledger(order: Order, reference: AdministrationReference, wanted: str | None, setting: str) -> str | None:
    if wanted is None or not reference.ledger_accounts:
        return wanted
    if wanted not in {account.id for account in reference.revenue_accounts()}:
        raise PlanRefused(
            order.id,
            f"{setting} is {wanted}, but Moneybird has no revenue ledger account with that id that "
            "allows sales invoices",
            f"set {setting} to the id of a revenue ledger account, or leave it empty for Moneybird's default",
            order_number=order.display_number,
        )
    return wanted


def _workflow(order: Order, reference: AdministrationReference, wanted: str | None) -> str | None:
    invoice_flows = [w for w in reference.workflows if w.type == "InvoiceWorkflow" and w.active]
    if wanted is None:
        return next((w.id for w in invoice_flows if w.default), None)
    if reference.workflows and wanted not in {w.id for w in invoice_flows}:
        raise PlanRefused(
            order.id,
            f"MONEYBIRD_WORKFLOW_ID is {wanted}, but Moneybird has no active invoice workflow with that id",
            "set MONEYBIRD_WORKFLOW_ID to an invoice workflow's id, or leave it empty for the default",
            order_number=order.display_number,
        )
    return wanted


def _document_style(order: Order, reference: AdministrationReference, wanted: str | None) -> str | None:
    if wanted is None:
        return next((s.id for s in reference.document_styles if s.default), None)
    if reference.document_styles and wanted not in {s.id for s in reference.document_styles}:
        raise PlanRefused(
            order.id,
            f"MONEYBIRD_DOCUMENT_STYLE_ID is {wanted}, but Moneybird has no document style with that id",
            "set MONEYBIRD_DOCUMENT_STYLE_ID to a document style's id, or leave it empty for the default",
            order_number=order.display_number,
        )
    return wanted


def _rate_by_id(reference: AdministrationReference, rate_id: str) -> TaxRate:
    rate = reference.tax_rate(rate_id)
    if rate is None:  # the rate book only hands out rates from the reference
        raise AssertionError(f"tax rate {rate_id} vanished from the reference data")
    return rate


# --- 3. Lines, gross, one tax rate each -----------------------------------------------------------


def _gross_by_rate(
    ctx: _Context, *, net: Decimal, tax: Decimal, taxes: Sequence[tuple[int, Decimal]], what: str
) -> list[tuple[TaxRate, Decimal]]:
    """A line's gross amount (net + its rounded tax) per Moneybird tax rate."""
    gross = (net + tax).quantize(CENT)
    if ctx.vat.exempt_rate is not None:
        return [(ctx.vat.exempt_rate, gross)]
    raw: dict[str, Decimal] = {}
    rates: dict[str, TaxRate] = {}
    for wc_rate_id, amount in taxes:
        rate = ctx.vat.rates.get(wc_rate_id)
        if rate is None:
            raise VatRefusal(
                f"{what} is taxed with WooCommerce tax rate {wc_rate_id}, which is missing from the "
                "order's tax lines",
                "check the order's taxes in WooCommerce (recalculate), then book it again",
            )
        raw[rate.id] = raw.get(rate.id, Decimal(0)) + amount
        rates[rate.id] = rate
    if not raw:
        return [(_untaxed_rate(ctx, gross), gross)]
    if len(raw) == 1 and _taxed_in_full(net, next(iter(raw.values())), next(iter(rates.values()))):
        return [(next(iter(rates.values())), gross)]
    return _split_mixed_line(ctx, net=net, tax=tax, raw=raw, rates=rates, what=what)


def _taxed_in_full(net: Decimal, raw_tax: Decimal, rate: TaxRate) -> bool:
    """Whether the tax is the rate applied to the whole line. A negative fee in a cart with
    untaxed products is taxed only on the share the taxed products make up."""
    return abs(net * rate.percentage / 100 - raw_tax) <= CENT


def _untaxed_rate(ctx: _Context, gross: Decimal) -> TaxRate:
    """The rate of a line WooCommerce did not tax inside a taxed order.

    A line worth nothing carries no VAT at any rate, so it borrows the order's first rate rather
    than demanding a 0 % rate that may not be configured.
    """
    if gross == 0 and ctx.vat.rates:
        return next(iter(ctx.vat.rates.values()))
    return ctx.book.rate(ZERO)


def _split_mixed_line(
    ctx: _Context,
    *,
    net: Decimal,
    tax: Decimal,
    raw: dict[str, Decimal],
    rates: dict[str, TaxRate],
    what: str,
) -> list[tuple[TaxRate, Decimal]]:
    """Split a line WooCommerce taxed at several rates, or on part of it, into one gross part per rate.

    WooCommerce does this to negative fees: it spreads the fee over the cart's tax classes and
    taxes each share. Each share's net follows from its tax (tax ÷ rate); a share at 0 % or left
    untaxed takes what remains. If the shares add up to more than the line, the taxes were stacked
    on one amount, which Moneybird cannot book on one line.
    """
    taxed = {rate_id: amount for rate_id, amount in raw.items() if rates[rate_id].percentage != 0}
    nets = {
        rate_id: (amount * 100 / rates[rate_id].percentage).quantize(CENT)
        for rate_id, amount in taxed.items()
    }
    taxes = {rate_id: amount.quantize(CENT) for rate_id, amount in taxed.items()}
    largest = max(taxed, key=lambda rate_id: abs(taxed[rate_id]))
    # WooCommerce rounded the line's tax on its own; the parts must add up to it.
    taxes[largest] += tax - sum(taxes.values(), Decimal(0))
    leftover = net - sum(nets.values(), Decimal(0))
    tolerance = sum(
        (_net_uncertainty(amount, rates[r].percentage) for r, amount in taxed.items()), Decimal(0)
    )
    if leftover and (leftover > 0) != (net > 0) and abs(leftover) > tolerance:
        shares = ", ".join(f"{rates[r].name} {raw[r]}" for r in raw)
        raise VatRefusal(
            f"{what} carries several taxes on the same amount ({shares}); Moneybird books one tax "
            "rate per invoice line",
            "book this order by hand",
        )
    untaxed = next((rate_id for rate_id in raw if rate_id not in taxed), None)
    parts = {rate_id: nets[rate_id] + taxes[rate_id] for rate_id in taxed}
    if untaxed is not None:
        parts[untaxed] = leftover
    elif abs(leftover) <= tolerance:
        parts[largest] += leftover
    else:
        zero = ctx.book.rate(ZERO)
        rates[zero.id] = zero
        parts[zero.id] = parts.get(zero.id, Decimal(0)) + leftover
    return [(rates[rate_id], amount) for rate_id, amount in parts.items()]


def _net_uncertainty(share: Decimal, percentage: Decimal) -> Decimal:
    """How far a share's net, derived as tax ÷ rate, may be off: a cent of rounding, and when the
    share itself came rounded to cents (WooCommerce ≥ 10.0 at its default `dp`: -0.69 for
    -0.685836) another half cent of tax ÷ rate — 5.6 cents at 9 %."""
    if share != share.quantize(CENT):
        return CENT
    return CENT + CENT / 2 * 100 / percentage


def _product_lines(ctx: _Context) -> list[PlanLine]:
    lines: list[PlanLine] = []
    discounts: dict[str, Decimal] = {}
    rates: dict[str, TaxRate] = {}
    for item in ctx.order.line_items:
        what = f"product {item.name!r}"
        before = _gross_by_rate(
            ctx,
            net=item.subtotal,
            tax=item.subtotal_tax,
            taxes=[(t.id, t.subtotal) for t in item.taxes],
            what=what,
        )
        after = _gross_by_rate(
            ctx, net=item.total, tax=item.total_tax, taxes=[(t.id, t.total) for t in item.taxes], what=what
        )
        lines += _item_lines(ctx, item, before)
        for rate, gross in before:
            discounts[rate.id] = discounts.get(rate.id, Decimal(0)) + gross
            rates[rate.id] = rate
        for rate, gross in after:
            discounts[rate.id] = discounts.get(rate.id, Decimal(0)) - gross
            rates[rate.id] = rate
    return lines + _discount_lines(ctx, discounts, rates)


def _item_lines(ctx: _Context, item: LineItem, parts: list[tuple[TaxRate, Decimal]]) -> list[PlanLine]:
    description = product_description(item)
    # WooCommerce's product id means nothing to Moneybird: only a transferred product's id does.
    product_id = ctx.products.get(item.sku.strip()) if item.sku else None
    if len(parts) == 1:
        rate, gross = parts[0]
        return _quantity_lines(ctx, description, item.quantity, gross, rate, product_id)
    return [
        ctx.line(
            f"{item.quantity:f} × {description} ({rate.name})",
            Decimal(1),
            gross,
            rate,
            "product",
            product_id=product_id,
        )
        for rate, gross in parts
    ]


def product_description(item: LineItem) -> str:
    """Name, the variation's attributes when the name lacks them, and the SKU."""
    name = item.name.strip()
    if item.variation_id:
        extra = [
            str(meta.value)
            for meta in item.meta_data
            if meta.key.startswith("pa_") and str(meta.value).lower() not in name.lower()
        ]
        if extra:
            name = f"{name} – {', '.join(extra)}"
    if item.sku:
        name = f"{name} ({item.sku})"
    return name


def _quantity_lines(
    ctx: _Context, description: str, quantity: Decimal, gross: Decimal, rate: TaxRate, product_id: str | None
) -> list[PlanLine]:
    """Keep the quantity on the invoice while every line stays a whole number of cents.

    9.01 for 2 pieces becomes 1 × 4.50 and 1 × 4.51: Moneybird multiplies amount by a two-decimal
    price, and 2 × 4.505 cannot be sent.
    """
    if quantity <= 0 or quantity != quantity.to_integral_value():
        return [
            ctx.line(
                f"{quantity:f} × {description}", Decimal(1), gross, rate, "product", product_id=product_id
            )
        ]
    count = int(quantity)
    cents = int(gross / CENT)
    if cents % count == 0:
        return [ctx.line(description, quantity, gross / count, rate, "product", product_id=product_id)]
    split = _best_split(cents, count, rate.percentage)
    ctx.notes.append(
        f"{description}: {count} × {_unit_text(gross, count)} is not a whole number of cents per piece; "
        f"booked as {' + '.join(f'{n} × {Decimal(unit) * CENT}' for n, unit in split)}"
    )
    return [
        ctx.line(description, Decimal(n), Decimal(unit) * CENT, rate, "product", product_id=product_id)
        for n, unit in split
    ]


def _unit_text(gross: Decimal, count: int) -> str:
    return f"{(gross / count).quantize(Decimal('0.0001')).normalize():f}"


def _best_split(cents: int, count: int, percentage: Decimal) -> list[tuple[int, int]]:
    """Pieces at neighbouring cent prices that add up to the line, chosen so that rounding VAT per
    line gives the same VAT as the unsplit line would have."""
    unit, rest = divmod(cents, count)
    candidates = [
        [(count - rest, unit), (rest, unit + 1)],
        [(count - 1, unit), (1, unit + rest)],
        [(1, unit + rest - count + 1), (count - 1, unit + 1)],
    ]
    whole = net_of_gross(Decimal(cents) * CENT, percentage)
    for split in candidates:
        nets = sum((net_of_gross(Decimal(n * u) * CENT, percentage) for n, u in split), Decimal(0))
        if nets == whole:
            return split
    return candidates[0]


def _discount_lines(
    ctx: _Context, discounts: dict[str, Decimal], rates: dict[str, TaxRate]
) -> list[PlanLine]:
    """One line per tax rate, naming the coupons, so the discount is visible and taxed right."""
    codes = ", ".join(coupon.code for coupon in ctx.order.coupon_lines if coupon.code)
    nonzero = [(rate_id, amount) for rate_id, amount in discounts.items() if amount]
    lines = []
    for rate_id, amount in nonzero:
        label = DISCOUNT_LABEL if amount > 0 else SURCHARGE_LABEL
        description = f"{label} {codes}".strip() if amount > 0 else label
        if len(nonzero) > 1:
            description += f" ({rates[rate_id].name})"
        lines.append(ctx.line(description, Decimal(1), -amount, rates[rate_id], "discount"))
    return lines


def _shipping_lines(ctx: _Context) -> list[PlanLine]:
    lines = []
    for shipping in ctx.order.shipping_lines:
        description = f"{SHIPPING_PREFIX}{shipping.method_title or shipping.method_id}"
        parts = _gross_by_rate(
            ctx,
            net=shipping.total,
            tax=shipping.total_tax,
            taxes=[(t.id, t.total) for t in shipping.taxes],
            what=f"shipping {shipping.method_title!r}",
        )
        lines += _part_lines(ctx, description, parts, "shipping")
    return lines


def _fee_lines(ctx: _Context) -> list[PlanLine]:
    lines = []
    for fee in ctx.order.fee_lines:
        parts = _gross_by_rate(
            ctx,
            net=fee.total,
            tax=fee.total_tax,
            taxes=[(t.id, t.total) for t in fee.taxes],
            what=f"fee {fee.name!r}",
        )
        lines += _part_lines(ctx, fee.name or FEE_FALLBACK, parts, "fee")
    return lines


def _part_lines(
    ctx: _Context, description: str, parts: list[tuple[TaxRate, Decimal]], kind: LineKind
) -> list[PlanLine]:
    if len(parts) == 1:
        return [ctx.line(description, Decimal(1), parts[0][1], parts[0][0], kind)]
    return [ctx.line(f"{description} ({rate.name})", Decimal(1), gross, rate, kind) for rate, gross in parts]


# --- 4. Rounding line -----------------------------------------------------------------------------


def _rounding_line(ctx: _Context, lines: list[PlanLine]) -> list[PlanLine]:
    """Book the cents between the lines and the order total visibly, at 0 % so VAT stays as charged.

    More than a cent per line is not rounding: a plugin changed the total (gift card, store credit)
    and booking it as rounding would misstate revenue.
    """
    lines_total = sum((line.total for line in lines), Decimal(0))
    residual = ctx.order.total - lines_total
    if not residual:
        return []
    limit = CENT * (len(lines) + 1)
    # WooCommerce never lets a total go below zero, even when a discount fee's tax takes it there.
    clamped_at_zero = ctx.order.total == 0 and lines_total < 0
    if abs(residual) > limit and not clamped_at_zero:
        raise PlanRefused(
            ctx.order.id,
            f"its lines add up to {lines_total} but the customer paid {ctx.order.total} (difference "
            f"{residual}); that is more than rounding, so something outside the lines changed the total",
            "check the order for gift cards, store credit or plugins that change totals, and book it by hand",
            order_number=ctx.order.display_number,
        )
    rate = _rounding_rate(ctx, lines)
    ctx.notes.append(
        f"the order total {ctx.order.total} differs from its lines by {residual}; booked as a rounding line "
        f"at {rate.name}"
    )
    return [ctx.line(ROUNDING_LABEL, Decimal(1), residual, rate, "rounding")]


def _rounding_rate(ctx: _Context, lines: list[PlanLine]) -> TaxRate:
    """0 %, so the rounding moves no VAT; else the rate of the largest line."""
    if ctx.vat.exempt_rate is not None:
        return ctx.vat.exempt_rate
    try:
        return ctx.book.rate(ZERO)
    except VatRefusal:
        if not lines:
            raise
    main = max(lines, key=lambda line: abs(line.total))
    return ctx.used_rates[main.tax_rate_id]


# --- 5. Exact VAT (option) ------------------------------------------------------------------------


def _vat_corrections(ctx: _Context, lines: list[PlanLine]) -> list[PlanLine]:
    """Per rate, small lines (usually one) that move Moneybird's VAT onto the shop's whether it
    rounds per line or per rate, and one line at 0 % that takes their sum back out of the total."""
    corrections: list[PlanLine] = []
    for rate_id, target in ctx.vat.shop_vat.items():
        rate = ctx.used_rates.get(rate_id)
        if rate is None or rate.percentage == 0:
            continue
        grosses = [line.total for line in lines if line.tax_rate_id == rate_id]
        shifts = find_vat_correction(grosses, rate.percentage, target)
        if shifts is None:
            ctx.notes.append(
                f"VAT at {rate.name} could not be made exact with a small correction; left as is"
            )
            continue
        if not shifts:
            continue
        if not _check_both_modes([*grosses, *shifts], rate.percentage, target):
            raise AssertionError(f"VAT correction {shifts} at {rate.name} does not hold in both modes")
        corrections += [
            ctx.line(f"{VAT_CORRECTION_LABEL} {rate.name}", Decimal(1), x, rate, "vat_correction")
            for x in shifts
        ]
        ctx.notes.append(
            f"VAT at {rate.name} made equal to the shop's {target} with correction lines "
            f"{', '.join(str(x) for x in shifts)}"
        )
    counter = sum((line.total for line in corrections), Decimal(0))
    if counter:
        corrections.append(
            ctx.line(VAT_COUNTER_LABEL, Decimal(1), -counter, ctx.book.rate(ZERO), "vat_correction")
        )
        ctx.notes.append(f"the VAT corrections are balanced by {-counter} at 0 %, so the total is unchanged")
    return corrections


def find_vat_correction(
    grosses: Sequence[Decimal], percentage: Decimal, target: Decimal
) -> tuple[Decimal, ...] | None:
    """Gross amounts to add at this rate so its VAT equals `target` under both rounding modes.

    Rounding per rate fixes the sum s of the additions: the rate's gross must land in the few cents
    whose VAT is `target`. Rounding per line fixes the VAT of the additions themselves, which is
    s × rate/(1 + rate) plus each addition's own rounding error of under half a cent. One addition
    usually does both; when the two modes disagree by more, small "lever" amounts whose VAT rounds
    far off supply the missing rounding error, about one lever per half cent. The fewest additions
    win. Returns () when nothing is needed, None when no correction within MAX_VAT_CORRECTION exists.
    """
    total = sum(grosses, Decimal(0))
    per_line = sum((vat_of_gross(g, percentage) for g in grosses), Decimal(0))
    per_rate = vat_of_gross(total, percentage)
    if per_line == target and per_rate == target:
        return ()
    line_gap, rate_gap = target - per_line, target - per_rate
    if max(abs(line_gap), abs(rate_gap)) > MAX_VAT_CORRECTION:
        return None
    reach = int((abs(rate_gap) / CENT + 2) * (100 + percentage) / percentage) + 3
    steps = [Decimal(k) * CENT for k in sorted(range(-reach, reach + 1), key=abs) if k]
    sums = [s for s in [Decimal(0), *steps] if vat_of_gross(total + s, percentage) == target]
    levers = _levers(percentage)
    most = int(abs(line_gap - rate_gap) / CENT) * 2 + 3
    for count in range(1, most + 1):
        for shift in sums:
            for chosen in combinations_with_replacement(levers, count - 1):
                last = shift - sum(chosen, Decimal(0))
                chosen_vat = sum((vat_of_gross(x, percentage) for x in chosen), Decimal(0))
                if last and vat_of_gross(last, percentage) == line_gap - chosen_vat:
                    return (*chosen, last)
    return None


def _levers(percentage: Decimal) -> tuple[Decimal, ...]:
    """The smallest amounts whose VAT rounds furthest up and furthest down, four of each."""

    def rounding_error(amount: Decimal) -> Decimal:
        return vat_of_gross(amount, percentage) - amount * percentage / (100 + percentage)

    candidates = [Decimal(k) * CENT for k in sorted(range(-400, 401), key=abs) if k]
    up = [x for x in candidates if rounding_error(x) >= CENT * 3 / 10][:4]
    down = [x for x in candidates if rounding_error(x) <= -CENT * 3 / 10][:4]
    return (*up, *down)


def _check_both_modes(grosses: Sequence[Decimal], percentage: Decimal, target: Decimal) -> bool:
    return all(
        rate_totals(grosses, percentage, rounding=mode, prices_are_incl_tax=True)[1] == target
        for mode in ROUNDING_MODES
    )
