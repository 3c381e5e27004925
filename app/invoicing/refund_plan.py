"""The refund → credit invoice plan: pure functions, no I/O.

A WooCommerce refund becomes one credit invoice for exactly the refunded amount, with prices
including VAT so Moneybird's total is the sum of the lines whatever way it rounds VAT:

- each refunded line (product, shipping, fee) becomes a negative line at the Moneybird tax rate
  of the order line it refunds (found through `_refunded_item_id`);
- money refunded beyond the refunded lines — all of it for an amount-only refund — is spread over
  the order's tax rates in proportion to each rate's gross share of the order, in whole cents by
  largest remainder, so the parts add up exactly (`spread_cents`);
- a refund whose lines add up to more than the money refunded is refused: which lines the
  difference belongs to, and so its VAT, would be a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

from app.constants import INVOICE_REFERENCE_PREFIX
from app.i18n import N_, Message
from app.invoicing.moneybird_arithmetic import CENT, ROUNDING_MODES, invoice_totals
from app.invoicing.plan import FEE_FALLBACK, SHIPPING_PREFIX, PlanOptions, local_date, product_description
from app.invoicing.reference import AdministrationReference, TaxRate, Workflow
from app.invoicing.vat import ZERO as ZERO_RATE
from app.invoicing.vat import OrderVat, RateBook, VatRefusal, order_vat, vat_number
from app.woocommerce.models import FeeLine, LineItem, LineTax, Meta, Order, Refund, ShippingLine

ZERO = Decimal(0)
# Words on the credit invoice; like the invoice, it is read in Dutch.
REFUND_PREFIX = "Retour: "
REFUND_LABEL = "Terugbetaling"
EXTRA_REFUND_LABEL = "Aanvullende terugbetaling"

RefundedLine = LineItem | ShippingLine | FeeLine
OrderLine = LineItem | ShippingLine | FeeLine


class CreditRefused(Exception):
    """The refund cannot be credited exactly as the shop recorded it; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class CreditLine:
    description: str
    quantity: Decimal
    price: Decimal  # including VAT
    tax_rate_id: str
    ledger_account_id: str | None = None

    @property
    def total(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class CreditPlan:
    """The credit invoice woobird intends to create for one refund; its total is −amount."""

    order_id: int
    order_number: str
    refund_id: int
    reference: str
    amount: Decimal  # what WooCommerce refunded, positive
    refunded_payment: bool
    reason: str
    invoice_date: date
    currency: str
    workflow_id: str | None
    document_style_id: str | None
    lines: tuple[CreditLine, ...]
    tax_rates: Mapping[str, TaxRate]
    # Moneybird tax rate id → the (negative) VAT the shop recorded on the refund at that rate.
    shop_vat: Mapping[str, Decimal]
    # Moneybird tax rate id → the part of an amount-only refund booked at that rate.
    spread: Mapping[str, Decimal] = field(default_factory=dict)
    prices_are_incl_tax: bool = True

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines), ZERO)

    @property
    def payment_date(self) -> date:
        # The money went back to the customer on the day the shop refunded it.
        return self.invoice_date

    @property
    def payment_reference(self) -> str:
        return ""  # the shop records no transaction id for a refund


def credit_reference(order_number: str, refund_id: int, *, prefix: str = INVOICE_REFERENCE_PREFIX) -> str:
    """Its own words, so neither the order's invoice nor another refund's credit matches it."""
    return f"{prefix}{order_number} refund {refund_id}"


def plan_credit(
    refund: Refund,
    *,
    order: Order,
    reference: AdministrationReference,
    options: PlanOptions,
) -> CreditPlan:
    """The credit invoice for `refund` of `order`; raises CreditRefused when it cannot be exact."""
    amount = refund.amount
    if amount <= 0 or amount != amount.quantize(CENT):
        raise CreditRefused(
            Message(
                "refund %(refund)s has amount %(amount)s; only positive whole-cent refunds can be credited",
                refund=refund.id,
                amount=amount,
            )
        )
    book = RateBook(reference, overrides=options.tax_rate_overrides)
    try:
        vat = _order_vat(order, book=book, reference=reference, options=options)
        tax_rates: dict[str, TaxRate] = {}
        lines = [
            _credit_line(line, order=order, vat=vat, book=book, options=options, tax_rates=tax_rates)
            for line in _refunded(refund)
        ]
    except VatRefusal as exc:
        raise CreditRefused(Message("%(reason)s; %(fix)s", reason=exc.reason, fix=exc.fix)) from exc
    # Before the rest is spread: a rest with fractions of a cent cannot be (spread_cents refuses it).
    _check_whole_cents(lines)
    lines_total = -sum((line.total for line in lines), ZERO)
    rest = amount - lines_total
    if rest < 0:
        raise CreditRefused(
            Message(
                "the lines of refund %(refund)s add up to %(total)s but only %(amount)s was refunded; "
                "which line the difference belongs to (and so its VAT) cannot be told — credit it by hand",
                refund=refund.id,
                total=lines_total,
                amount=amount,
            )
        )
    spread: dict[str, Decimal] = {}
    if rest > 0:
        spread = _spread_rest(rest, order=order, vat=vat, tax_rates=tax_rates)
        label = REFUND_LABEL if not lines else EXTRA_REFUND_LABEL
        for rate_id, part in spread.items():
            lines.append(
                CreditLine(
                    description=f"{label} bestelling #{order.display_number} ({tax_rates[rate_id].name})",
                    quantity=Decimal(-1),
                    price=part,
                    tax_rate_id=rate_id,
                    ledger_account_id=options.ledger_account_id,
                )
            )
    plan = CreditPlan(
        order_id=order.id,
        order_number=order.display_number,
        refund_id=refund.id,
        reference=credit_reference(order.display_number, refund.id, prefix=options.reference_prefix),
        amount=amount,
        refunded_payment=refund.refunded_payment,
        reason=(refund.reason or "").strip(),
        invoice_date=local_date(refund.date_created_gmt or datetime.now(UTC), options.timezone),
        currency=order.currency.upper(),
        workflow_id=_default(options.workflow_id, [w.id for w in reference.workflows if _default_flow(w)]),
        document_style_id=_default(
            options.document_style_id, [s.id for s in reference.document_styles if s.default]
        ),
        lines=tuple(lines),
        tax_rates=tax_rates,
        shop_vat=_shop_vat(refund, order=order, vat=vat),
        spread=spread,
    )
    _check_exact(plan)
    return plan


def spread_cents(amount: Decimal, weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Split `amount` (whole cents) over positive weights in proportion, exactly.

    Every key first gets its proportional share rounded down to a cent; the cents left over go one
    each to the keys with the largest remainders (ties: the larger weight, then the key), so each
    part is within a cent of its exact share and the parts add up to `amount`.
    """
    if amount != amount.quantize(CENT) or amount < 0:
        raise ValueError(f"can only spread a non-negative whole-cent amount, not {amount}")
    positive = {key: weight for key, weight in weights.items() if weight > 0}
    if not positive:
        raise ValueError("nothing to spread over: no positive weight")
    whole = sum(positive.values(), ZERO)
    cents = int(amount / CENT)
    # Fractions, not Decimals: a share like 24 × 2/9 rounded to 28 digits would leave a remainder a
    # hair larger than the equal one of 24 × 5/9, and the tie would not go to the larger weight.
    exact = {key: Fraction(cents) * Fraction(weight) / Fraction(whole) for key, weight in positive.items()}
    floors = {key: int(share) for key, share in exact.items()}
    left = cents - sum(floors.values())
    by_remainder = sorted(positive, key=lambda key: (-(exact[key] - floors[key]), -positive[key], key))
    for key in by_remainder[:left]:
        floors[key] += 1
    return {key: Decimal(count) * CENT for key, count in floors.items()}


# ── internals ───────────────────────────────────────────────────────────────────────────────


def _order_vat(
    order: Order, *, book: RateBook, reference: AdministrationReference, options: PlanOptions
) -> OrderVat:
    return order_vat(
        order,
        book=book,
        home_country=reference.country,
        customer_vat_number=vat_number(order, options.vat_number_meta_keys),
    )


def _refunded(refund: Refund) -> list[RefundedLine]:
    lines: list[RefundedLine] = [*refund.line_items, *refund.shipping_lines, *refund.fee_lines]
    return [line for line in lines if line.total != 0 or line.total_tax != 0]


def _refunded_item_id(meta: Sequence[Meta]) -> int | None:
    value = next((entry.value for entry in meta if entry.key == "_refunded_item_id"), None)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _original(line: RefundedLine, order: Order) -> OrderLine | None:
    item_id = _refunded_item_id(line.meta_data) if isinstance(line, LineItem) else _meta_id(line)
    if item_id is None:
        return None
    candidates: Sequence[OrderLine]
    if isinstance(line, LineItem):
        candidates = order.line_items
    elif isinstance(line, ShippingLine):
        candidates = order.shipping_lines
    else:
        candidates = order.fee_lines
    return next((candidate for candidate in candidates if candidate.id == item_id), None)


def _meta_id(line: ShippingLine | FeeLine) -> int | None:
    # Shipping and fee lines carry meta on the wire; the models keep it only where present.
    meta: Sequence[Meta] = getattr(line, "meta_data", ())
    return _refunded_item_id(meta)


def _line_rate(line: RefundedLine, *, order: Order, vat: OrderVat, book: RateBook) -> TaxRate:
    """The Moneybird rate the invoice booked the order line this refund line gives back at.

    That is the one rate the order line was taxed at — also when its tax is zero, as a gift voucher's
    at a 0 % rate is — and the 0 % rate for a line WooCommerce did not tax at all. WooCommerce leaves
    a zero tax off the refund line, so the order line decides.
    """
    if vat.exempt_rate is not None:
        return vat.exempt_rate
    original = _original(line, order)
    taxes: Sequence[LineTax] = original.taxes if original is not None else line.taxes
    rate_ids = {tax.id for tax in taxes if tax.total != 0}
    if not rate_ids and original is not None:
        rate_ids = {tax.id for tax in line.taxes if tax.total != 0} or {tax.id for tax in taxes}
    if len(rate_ids) > 1:
        raise CreditRefused(
            Message(
                "refunded %(kind)s %(name)r carries VAT at %(count)s rates; a credit line books one rate — "
                "credit it by hand",
                kind=Message(_kind(line)),
                name=_name(line),
                count=len(rate_ids),
            )
        )
    if not rate_ids:
        if original is None:
            raise CreditRefused(
                Message(
                    "refunded %(kind)s %(name)r carries no VAT and names no order line; which rate it "
                    "belongs to cannot be told — credit it by hand",
                    kind=Message(_kind(line)),
                    name=_name(line),
                )
            )
        return book.rate(ZERO_RATE)  # untaxed in a taxed order: the invoice booked it at 0 %
    rate_id = rate_ids.pop()
    rate = vat.rates.get(rate_id)
    if rate is None:
        raise CreditRefused(
            Message(
                "refunded %(kind)s %(name)r is taxed at WooCommerce tax rate %(rate)s, which the order "
                "does not list among its taxes — credit it by hand",
                kind=Message(_kind(line)),
                name=_name(line),
                rate=rate_id,
            )
        )
    return rate


def _credit_line(
    line: RefundedLine,
    *,
    order: Order,
    vat: OrderVat,
    book: RateBook,
    options: PlanOptions,
    tax_rates: dict[str, TaxRate],
) -> CreditLine:
    rate = _line_rate(line, order=order, vat=vat, book=book)
    tax_rates[rate.id] = rate
    gross = -(line.total + line.total_tax)  # positive: what the customer gets back for this line
    if gross <= 0:
        raise CreditRefused(
            Message(
                "refunded %(kind)s %(name)r has a non-negative amount (%(amount)s); refund lines are "
                "negative — credit it by hand",
                kind=Message(_kind(line)),
                name=_name(line),
                amount=-gross,
            )
        )
    # The same ledger accounts as the invoice plan: products on one, shipping and fees on the other.
    ledger_account = options.ledger_account_id
    if not isinstance(line, LineItem):
        ledger_account = options.shipping_ledger_account_id or options.ledger_account_id
    quantity = -line.quantity if isinstance(line, LineItem) else ZERO
    whole = quantity > 0 and quantity == quantity.to_integral_value()
    if whole and gross / quantity == (gross / quantity).quantize(CENT):
        # Like Moneybird's own credit invoices: a negative quantity at the positive unit price.
        return CreditLine(
            f"{REFUND_PREFIX}{_description(line)}", -quantity, gross / quantity, rate.id, ledger_account
        )
    # A unit price that is not whole cents (or no quantity at all): one line, the count in words.
    count = f"{_quantity(quantity)} × " if quantity > 0 else ""
    return CreditLine(
        f"{REFUND_PREFIX}{count}{_description(line)}", Decimal(-1), gross, rate.id, ledger_account
    )


def _description(line: RefundedLine) -> str:
    if isinstance(line, LineItem):
        return product_description(line)
    if isinstance(line, ShippingLine):
        return f"{SHIPPING_PREFIX}{line.method_title or line.method_id}"
    return line.name or FEE_FALLBACK


def _default(wanted: str | None, defaults: Sequence[str]) -> str | None:
    return wanted if wanted is not None else next(iter(defaults), None)


def _default_flow(workflow: Workflow) -> bool:
    return workflow.type == "InvoiceWorkflow" and workflow.active and workflow.default


def _order_gross_by_rate(order: Order, *, vat: OrderVat) -> dict[str, Decimal]:
    """What the customer paid per Moneybird tax rate: products, shipping and fees incl. VAT."""
    gross: dict[str, Decimal] = {}
    lines: list[OrderLine] = [*order.line_items, *order.shipping_lines, *order.fee_lines]
    for line in lines:
        amount = line.total + line.total_tax
        if amount == 0:
            continue
        if vat.exempt_rate is not None:
            rate_id = vat.exempt_rate.id
        else:
            charged = {tax.id for tax in line.taxes if tax.total != 0}
            if len(charged) != 1:
                # An untaxed or multi-rate line has no single rate to weigh; it is left out of the weights.
                continue
            rate = vat.rates.get(charged.pop())
            if rate is None:
                continue
            rate_id = rate.id
        gross[rate_id] = gross.get(rate_id, ZERO) + amount
    return gross


def _spread_rest(
    rest: Decimal, *, order: Order, vat: OrderVat, tax_rates: dict[str, TaxRate]
) -> dict[str, Decimal]:
    weights = _order_gross_by_rate(order, vat=vat)
    if not any(weight > 0 for weight in weights.values()):
        raise CreditRefused(
            Message(
                "order %(order)s has no taxed amount to spread a refund of %(amount)s over; "
                "credit it by hand",
                order=order.display_number,
                amount=rest,
            )
        )
    by_id = {rate.id: rate for rate in vat.rates.values()}
    if vat.exempt_rate is not None:
        by_id[vat.exempt_rate.id] = vat.exempt_rate
    spread = {rate_id: part for rate_id, part in spread_cents(rest, weights).items() if part > 0}
    for rate_id in spread:
        tax_rates[rate_id] = by_id[rate_id]
    return dict(sorted(spread.items(), key=lambda item: (-by_id[item[0]].percentage, item[0])))


def _shop_vat(refund: Refund, *, order: Order, vat: OrderVat) -> dict[str, Decimal]:
    recorded: dict[str, Decimal] = {}
    if vat.exempt_rate is not None:
        return {vat.exempt_rate.id: ZERO}
    for tax_line in refund.tax_lines:
        rate = vat.rates.get(tax_line.rate_id)
        if rate is not None:
            total = tax_line.tax_total + tax_line.shipping_tax_total
            recorded[rate.id] = recorded.get(rate.id, ZERO) + total
    return recorded


def _check_exact(plan: CreditPlan) -> None:
    """Gross prices make Moneybird's total the sum of the lines; prove it under both roundings."""
    _check_whole_cents(plan.lines)
    for rounding in ROUNDING_MODES:
        total, _ = invoice_totals(
            ((line.tax_rate_id, line.total) for line in plan.lines),
            {rate_id: rate.percentage for rate_id, rate in plan.tax_rates.items()},
            rounding=rounding,
            prices_are_incl_tax=plan.prices_are_incl_tax,
        )
        if total != -plan.amount:
            raise CreditRefused(
                Message(
                    "the credit invoice would total %(total)s (%(rounding)s VAT rounding) instead of "
                    "%(amount)s — credit refund %(refund)s by hand",
                    total=total,
                    rounding=rounding.replace("_", " "),
                    amount=-plan.amount,
                    refund=plan.refund_id,
                )
            )


def _check_whole_cents(lines: Sequence[CreditLine]) -> None:
    for line in lines:
        if line.price != line.price.quantize(CENT):
            raise CreditRefused(
                Message(
                    "credit line %(line)r would need a price of %(price)s, not whole cents",
                    line=line.description,
                    price=line.price,
                )
            )


def _kind(line: RefundedLine) -> str:
    if isinstance(line, LineItem):
        return N_("line")
    return N_("shipping") if isinstance(line, ShippingLine) else N_("fee")


def _name(line: RefundedLine) -> str:
    if isinstance(line, ShippingLine):
        return line.method_title or "Shipping"
    return line.name or "item"


def _quantity(value: Decimal) -> str:
    return str(value.normalize()) if value != value.to_integral_value() else str(int(value))
