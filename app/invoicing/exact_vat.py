"""Exact VAT (the INVOICE_EXACT_VAT option, rule 5 of `plan.py`): small correction lines that put
Moneybird's VAT per rate on the shop's whether Moneybird rounds per line or per rate."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import combinations_with_replacement

from app.invoicing.invoice_plan import VAT_CORRECTION_LABEL, VAT_COUNTER_LABEL, PlanContext, PlanLine
from app.invoicing.moneybird_arithmetic import CENT, ROUNDING_MODES, rate_totals, vat_of_gross
from app.invoicing.vat import ZERO

# A correction larger than this is not rounding; it would hide a real difference.
MAX_VAT_CORRECTION = Decimal("0.10")


def vat_corrections(ctx: PlanContext, lines: list[PlanLine]) -> list[PlanLine]:
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
