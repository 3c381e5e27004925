"""How far Moneybird's VAT per rate strays from the shop's, over many generated orders.

    .venv/bin/python -m bench.measure_vat_deviation [--orders 10000] [--seed 20250601]

Orders come from the checkout simulator's seeded generator (WooCommerce's arithmetic; consumers at
home and abroad, EU businesses, export; coupons, shipping, fees). Each is planned with and without
the exact-VAT option and priced the way Moneybird rounds VAT per line and per rate. Prints the worst
deviation per tax rate, the share of orders with any deviation, and whether every total was exact.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from app.invoicing.moneybird_arithmetic import ROUNDING_MODES, Rounding, predicted_total, vat_deviation
from app.invoicing.plan import InvoicePlan, PlanOptions, PlanRefused, plan_invoice
from app.sandbox.administration import sandbox_reference
from app.sandbox.woocommerce.checkout import random_order
from app.woocommerce.models import Order


def measure(orders: int, seed: int) -> None:
    reference = sandbox_reference()
    rng = random.Random(seed)
    created = datetime(2025, 6, 1, 9, tzinfo=UTC)
    worst: dict[tuple[bool, Rounding, str], Decimal] = defaultdict(Decimal)
    deviating: Counter[tuple[bool, Rounding]] = Counter()
    wrong_totals: Counter[tuple[bool, Rounding]] = Counter()
    correction_lines: Counter[int] = Counter()
    refused: Counter[str] = Counter()
    planned = 0
    started = time.perf_counter()
    for n in range(orders):
        order = Order.model_validate(random_order(rng, order_id=100_000 + n, created_at=created))
        for exact_vat in (False, True):
            try:
                plan = plan_invoice(order, reference=reference, options=PlanOptions(exact_vat=exact_vat))
            except PlanRefused as refusal:
                refused[refusal.reason.split(":")[0][:90]] += exact_vat is False
                continue
            planned += exact_vat is False
            if exact_vat:
                correction_lines[sum(1 for line in plan.lines if line.kind == "vat_correction")] += 1
            _tally(plan, order, exact_vat, worst, deviating, wrong_totals)
    elapsed = time.perf_counter() - started

    print(
        f"{orders} orders generated (seed {seed}), {planned} planned, {sum(refused.values())} refused, "
        f"{elapsed:.1f} s"
    )
    for reason, count in refused.most_common():
        print(f"  refused {count}×: {reason}")
    for exact_vat in (False, True):
        print(f"\nexact_vat={'on' if exact_vat else 'off'}")
        for mode in ROUNDING_MODES:
            share = deviating[(exact_vat, mode)] / max(planned, 1)
            print(
                f"  Moneybird rounding {mode}: totals off in {wrong_totals[(exact_vat, mode)]} orders; "
                f"orders with any VAT deviation {share:.2%}"
            )
            names = sorted({name for (e, m, name) in worst if e == exact_vat and m == mode})
            for name in names:
                print(f"    worst deviation {name:<18} {worst[(exact_vat, mode, name)]:>5}")
    lines = ", ".join(f"{count} lines: {orders_}" for count, orders_ in sorted(correction_lines.items()))
    print(f"\nexact_vat correction lines per invoice: {lines}")


def _tally(
    plan: InvoicePlan,
    order: Order,
    exact_vat: bool,
    worst: dict[tuple[bool, Rounding, str], Decimal],
    deviating: Counter[tuple[bool, Rounding]],
    wrong_totals: Counter[tuple[bool, Rounding]],
) -> None:
    for mode in ROUNDING_MODES:
        if predicted_total(plan, mode) != order.total:
            wrong_totals[(exact_vat, mode)] += 1
        deviations = vat_deviation(plan, mode)
        if any(deviations.values()):
            deviating[(exact_vat, mode)] += 1
        for rate_id, difference in deviations.items():
            key = (exact_vat, mode, plan.tax_rates[rate_id].name)
            worst[key] = max(worst[key], abs(difference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20250601)
    arguments = parser.parse_args()
    measure(arguments.orders, arguments.seed)


if __name__ == "__main__":
    main()
