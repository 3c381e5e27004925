"""Healing after Redis lost its data, in the chaos run: how long until every order is booked again.

Runs the chaos test (tests/chaos/test_chaos.py: real web and two workers, 200 orders, a worker
killed mid-job, Moneybird and shop faults, then Redis restarted without persistence) and reads the
two lines it prints about the heal: the seconds from the Redis restart — the last fault — until
every qualifying order and every refund is booked, and how soon a worker noticed. The figure is a
multiple of the run's RECONCILE_INTERVAL_SECONDS (30 s, the least the setting allows): before the
marker check (app.booking.redis_marker) the lost jobs waited for the next reconciliation pass, and
orders caught in `booking` for the job timeout + 60 s beyond it. Goal: at most 1.5 intervals.

    .venv/bin/python bench/bench_heal.py [--rounds 3] [--seed 538140] [--orders 200]

Needs what the chaos test needs: `redis-server` on the PATH and PostgreSQL at TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import header, table

from app.settings import REPO_ROOT

GOAL = 1.5
_HEAL = re.compile(r"heal: ([\d.]+) s from the last fault.*?RECONCILE_INTERVAL_SECONDS \((\d+) s\)")
_NOTICED = re.compile(r"noticed: ([\d.]+) s after the restart; .*?: (\d+) orders? and (\d+) refunds?")


def one_round(*, seed: int, orders: int, logs: Path) -> tuple[float, int, float | None, str]:
    """Seconds until settled, the run's interval, seconds until noticed, what was queued again."""
    env = os.environ | {"CHAOS_SEED": str(seed), "CHAOS_ORDERS": str(orders)}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "chaos",
        "-s",
        "tests/chaos/test_chaos.py",
        f"--basetemp={logs}",  # the processes' logs stay there, to see where a slow round's time went
    ]
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    healed = _HEAL.search(done.stdout)
    if done.returncode != 0 or healed is None:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-2000:])
        raise SystemExit(f"the chaos run failed (seed {seed}); its output is above")
    noticed = _NOTICED.search(done.stdout)
    seconds, interval = float(healed[1]), int(healed[2])
    if noticed is None:
        return seconds, interval, None, "—"
    return seconds, interval, float(noticed[1]), f"{noticed[2]} orders, {noticed[3]} refunds"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=538140)
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    header(
        "Heal after Redis lost its data (chaos run)",
        [
            f"{args.orders} orders, seed {args.seed}, {args.rounds} rounds; web + 2 workers (Procfile)",
            f"baseline: the run's RECONCILE_INTERVAL_SECONDS; goal ≤ {GOAL}× it",
        ],
    )
    rows: list[list[str]] = []
    ratios: list[float] = []
    interval = 0
    kept = Path(tempfile.mkdtemp(prefix="bench-heal-"))
    print(f"logs of each round's web and workers: {kept}/round-N/*/\n")
    for number in range(1, args.rounds + 1):
        seconds, interval, noticed, queued = one_round(
            seed=args.seed, orders=args.orders, logs=kept / f"round-{number}"
        )
        ratio = seconds / interval
        ratios.append(ratio)
        rows.append(
            [
                str(number),
                f"{seconds:.1f} s",
                f"{ratio:.2f}×",
                "—" if noticed is None else f"{noticed:.1f} s",
                queued,
            ]
        )
    table(["round", "restart → all booked", "× interval", "noticed after", "queued again"], rows)
    median = statistics.median(ratios)
    verdict = "meets" if median <= GOAL else "misses"
    print(
        f"\nmedian {median:.2f}× RECONCILE_INTERVAL_SECONDS = {interval} s ({verdict} the goal of ≤ {GOAL}×)"
    )


if __name__ == "__main__":
    main()
