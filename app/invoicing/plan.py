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
     at several rates (a negative "cart discount" fee) is split into one line per rate
     (`plan_lines.py`).
4. Whatever still separates the lines from the order total becomes a visible rounding line.
5. With `exact_vat`, a pair of small correction lines moves the VAT per rate onto the shop's
   (`exact_vat.py`).

Amounts are Decimal throughout; `predict_totals` in `moneybird_arithmetic.py` says what Moneybird
will compute, and the plan records the VAT the shop charged per rate so differences show. The
plan's shapes (`InvoicePlan`, `PlanLine`, `PlanOptions`, `PlanRefused`) are in `invoice_plan.py`;
callers import them from here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.constants import INVOICE_REFERENCE_PREFIX
from app.invoicing.contact import plan_contact
from app.invoicing.exact_vat import find_vat_correction, vat_corrections
from app.invoicing.invoice_plan import (
    FEE_FALLBACK,
    ROUNDING_LABEL,
    SHIPPING_PREFIX,
    InvoicePlan,
    PlanContext,
    PlanLine,
    PlanOptions,
    PlanRefused,
)
from app.invoicing.moneybird_arithmetic import CENT
from app.invoicing.plan_lines import fee_lines, product_description, product_lines, shipping_lines
from app.invoicing.reference import AdministrationReference, TaxRate
from app.invoicing.vat import ZERO, RateBook, VatRefusal, order_vat, vat_number
from app.woocommerce.models import Order

__all__ = [
    "FEE_FALLBACK",
    "SHIPPING_PREFIX",
    "InvoicePlan",
    "PlanLine",
    "PlanOptions",
    "PlanRefused",
    "find_vat_correction",
    "local_date",
    "plan_invoice",
    "product_description",
]


def plan_invoice(order: Order, *, reference: AdministrationReference, options: PlanOptions) -> InvoicePlan:
    """The invoice for a paid order, or PlanRefused saying why not and what to change."""
    try:
        return _plan(order, reference, options)
    except VatRefusal as refusal:
        raise PlanRefused(order.id, refusal.reason, refusal.fix, order_number=order.display_number) from None


def _plan(order: Order, reference: AdministrationReference, options: PlanOptions) -> InvoicePlan:
    if order.total != order.total.quantize(CENT):
        raise PlanRefused(
            order.id,
            f"its total {order.total} is not a whole number of cents, and Moneybird prices have two decimals",
            "set WooCommerce's number of decimals to 2 (WooCommerce → Settings → General)",
            order_number=order.display_number,
        )
    paid_on = (
        _ordered_date(order, options.timezone) if options.unpaid else _payment_date(order, options.timezone)
    )
    customer_vat_number = vat_number(order, options.vat_number_meta_keys)
    book = RateBook(reference, options.tax_rate_overrides)
    vat = order_vat(order, book=book, home_country=reference.country, customer_vat_number=customer_vat_number)
    product_revenue_account = _revenue_account(
        order, reference, options.ledger_account_id, "MONEYBIRD_LEDGER_ACCOUNT_ID"
    )
    other_revenue_account = _revenue_account(
        order, reference, options.shipping_ledger_account_id, "MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID"
    )
    ctx = PlanContext(
        order,
        vat,
        book,
        product_revenue_account,
        other_revenue_account or product_revenue_account,
        options.products,
    )

    lines = product_lines(ctx)
    lines += shipping_lines(ctx)
    lines += fee_lines(ctx)
    lines += _rounding_line(ctx, lines)
    if options.exact_vat:
        lines += vat_corrections(ctx, lines)
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


def _ordered_date(order: Order, timezone: str) -> date:
    """An open invoice's date: the day the order was placed (its payment comes later, in Moneybird)."""
    placed = order.date_created_gmt or order.date_modified_gmt
    if placed is None:
        raise PlanRefused(
            order.id,
            "WooCommerce sent no date for it (date_created)",
            "open the order in WooCommerce and save it",
            order_number=order.display_number,
        )
    return local_date(placed, timezone)


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


def _revenue_account(
    order: Order, reference: AdministrationReference, wanted: str | None, setting: str
) -> str | None:
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


# --- 4. Rounding line -----------------------------------------------------------------------------


def _rounding_line(ctx: PlanContext, lines: list[PlanLine]) -> list[PlanLine]:
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


def _rounding_rate(ctx: PlanContext, lines: list[PlanLine]) -> TaxRate:
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
