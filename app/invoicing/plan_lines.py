"""The plan's invoice lines: every product, discount, shipping and fee line at a whole number of
cents gross, with one Moneybird tax rate each (rule 3 of `plan.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from app.invoicing.invoice_plan import (
    DISCOUNT_LABEL,
    FEE_FALLBACK,
    SHIPPING_PREFIX,
    SURCHARGE_LABEL,
    LineKind,
    PlanContext,
    PlanLine,
)
from app.invoicing.moneybird_arithmetic import CENT, net_of_gross
from app.invoicing.reference import TaxRate
from app.invoicing.vat import ZERO, VatRefusal
from app.woocommerce.models import LineItem


def _gross_by_rate(
    ctx: PlanContext, *, net: Decimal, tax: Decimal, taxes: Sequence[tuple[int, Decimal]], what: str
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


def _untaxed_rate(ctx: PlanContext, gross: Decimal) -> TaxRate:
    """The rate of a line WooCommerce did not tax inside a taxed order.

    A line worth nothing carries no VAT at any rate, so it borrows the order's first rate rather
    than demanding a 0 % rate that may not be configured.
    """
    if gross == 0 and ctx.vat.rates:
        return next(iter(ctx.vat.rates.values()))
    return ctx.book.rate(ZERO)


def _split_mixed_line(
    ctx: PlanContext,
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


def product_lines(ctx: PlanContext) -> list[PlanLine]:
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


def _item_lines(ctx: PlanContext, item: LineItem, parts: list[tuple[TaxRate, Decimal]]) -> list[PlanLine]:
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
    ctx: PlanContext,
    description: str,
    quantity: Decimal,
    gross: Decimal,
    rate: TaxRate,
    product_id: str | None,
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
    ctx: PlanContext, discounts: dict[str, Decimal], rates: dict[str, TaxRate]
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


def shipping_lines(ctx: PlanContext) -> list[PlanLine]:
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


def fee_lines(ctx: PlanContext) -> list[PlanLine]:
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
    ctx: PlanContext, description: str, parts: list[tuple[TaxRate, Decimal]], kind: LineKind
) -> list[PlanLine]:
    if len(parts) == 1:
        return [ctx.line(description, Decimal(1), parts[0][1], parts[0][0], kind)]
    return [ctx.line(f"{description} ({rate.name})", Decimal(1), gross, rate, kind) for rate, gross in parts]
