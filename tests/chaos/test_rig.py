"""The chaos run is reproducible: its seed alone decides the orders, their fates and their refunds.

Not marked chaos: this is the cheap half of the promise that `CHAOS_SEED=<printed seed>` runs the
same scenario again (tests/chaos/test_chaos.py prints the seed first thing).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from tests.chaos.rig import plan_orders, refund_amount

PAID_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _run(seed: int) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    planned = plan_orders(40, paid_at=PAID_AT, rng=rng)
    return [
        (
            p.order_id,
            p.document,
            p.kind,
            p.qualifies,
            p.email,
            p.delivery,
            p.completes_later,
            p.refunds,
            refund_amount(p.document, part=0, rng=rng),
        )
        for p in planned
    ]


def test_the_same_seed_plans_the_same_run() -> None:
    assert _run(424242) == _run(424242)


def test_another_seed_plans_another_run() -> None:
    first, other = _run(424242), _run(424243)
    assert first != other
    # Not just one detail: the fates of many orders differ.
    assert sum(a[5] != b[5] for a, b in zip(first, other, strict=True)) > 5
