"""What one woobird carrying 1, 10 or 100 shops costs a month, from measured figures (issue #22).

Not a benchmark itself: bench/bench_connections.py measures the figures and calls `cost_table`.
The prices are the README's price table ("What it costs to run": the platforms' list prices as
stored copies of their pages showed them on 2026-12-07, without VAT, 30 days); the sizes of the
processes come from the run, grown in a straight line from 1 to the measured number of
connections and beyond it.

Assumed, and printed with the table: each shop books 1 000 orders a month, and the busiest minute
holds 20 times the average minute; the idle Redis traffic per minute is bench_idle.py's
(`--connections 50`), measured on 2026-12-07 and passed in here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from _common import table

PRICES_DATE = "2026-12-07"
HEROKU_DYNO_USD = 7.0  # Basic dyno, 512 MB
HEROKU_KV_USD = 3.0  # Key-Value Store Mini, commands not billed
FLY_MACHINE_512_USD = 3.69  # shared-cpu-1x 512 MB in iad
FLY_POSTGRES_USD = 2.19 + 0.15  # `fly postgres create`: a 256 MB Machine and a 1 GB volume
UPSTASH_USD_PER_100K = 0.20
VPS_EUR = 4.11  # Hetzner cx23: 2 vCPU, 4 GB, everything on one server
VPS_MIB = 4096
HOSTED_EUR_PER_SHOP = 10.0
PROCESS_MIB = 512  # what a Basic dyno and the priced Fly Machine hold
# Redis, PostgreSQL and the system on the VPS: room left for them beside woobird's processes.
VPS_OTHERS_MIB = 1024
ORDERS_PER_SHOP_MONTH = 1000
PEAK_FACTOR = 20
MINUTES_A_MONTH = 60 * 24 * 30
# Idle Redis commands a minute sent by web + worker, by connections: `bench_idle.py --connections 50
# --reconcile-seconds 300 --seconds 300` on 2026-12-07 14:15–14:27 UTC at f57264b (13:10 UTC before: 19, 194).
IDLE_REDIS_PER_MINUTE = {1: 25.0, 50: 119.0}


@dataclass(frozen=True)
class Footprint:
    web_mib: tuple[float, float]  # at 1 connection, at `connections`
    worker_mib: tuple[float, float]
    connections: int
    orders_per_minute_per_worker: float
    redis_per_order: float

    def grown(self, pair: tuple[float, float], shops: int) -> float:
        one, many = pair
        return one + (many - one) * (shops - 1) / (self.connections - 1)


def idle_redis_per_minute(shops: int, measured: dict[int, float]) -> float:
    (low, low_value), (high, high_value) = sorted(measured.items())
    return low_value + (high_value - low_value) * (shops - low) / (high - low)


def workers_needed(footprint: Footprint, shops: int) -> int:
    peak = shops * ORDERS_PER_SHOP_MONTH / MINUTES_A_MONTH * PEAK_FACTOR
    return max(1, math.ceil(peak / footprint.orders_per_minute_per_worker))


def cost_table(footprint: Footprint, idle: dict[int, float] | None = None) -> None:
    measured = idle or IDLE_REDIS_PER_MINUTE
    rows = []
    for shops in (1, 10, 100):
        workers = workers_needed(footprint, shops)
        web, worker = footprint.grown(footprint.web_mib, shops), footprint.grown(footprint.worker_mib, shops)
        fits = max(web, worker) <= PROCESS_MIB
        size = "" if fits else f" — a process needs {max(web, worker):.0f} MiB: a larger size, not priced"
        processes = 1 + workers
        commands = idle_redis_per_minute(shops, measured) * MINUTES_A_MONTH
        commands += shops * ORDERS_PER_SHOP_MONTH * footprint.redis_per_order
        upstash = commands / 100_000 * UPSTASH_USD_PER_100K
        heroku = processes * HEROKU_DYNO_USD + HEROKU_KV_USD
        fly = processes * FLY_MACHINE_512_USD + FLY_POSTGRES_USD + upstash
        vps_fits = web + workers * worker + VPS_OTHERS_MIB <= VPS_MIB
        rows.append(
            [
                str(shops),
                f"web {web:.0f} + {workers} × worker {worker:.0f} MiB",
                f"{commands / 1e6:.2f} M",
                f"${heroku:.0f} + Postgres{size}",
                f"${fly:.2f} (Upstash ${upstash:.2f}){size}",
                f"€{VPS_EUR:.2f}" if vps_fits else "more than one cx23",
                f"€{HOSTED_EUR_PER_SHOP * shops:.0f}",
            ]
        )
    print(
        f"(e) one deployment carrying 1, 10 and 100 shops, a month ({PRICES_DATE} list prices, README): "
        f"{ORDERS_PER_SHOP_MONTH} orders per shop, the busiest minute {PEAK_FACTOR}× the average; "
        f"idle Redis {measured} commands/min by connections (bench_idle.py), "
        f"{footprint.redis_per_order:.0f} per order (this run)"
    )
    table(
        ["shops", "processes (RSS grown linearly)", "Redis cmds", "Heroku", "Fly.io", "VPS", "hosted"],
        rows,
    )
    print(
        f"per shop: divide by the shops. Heroku: Basic dynos ${HEROKU_DYNO_USD:.0f}, Key-Value Mini "
        f"${HEROKU_KV_USD:.0f}, Postgres Essential's price not found (README). Fly: shared-cpu-1x 512 MB "
        f"${FLY_MACHINE_512_USD}, unmanaged Postgres ${FLY_POSTGRES_USD:.2f}, Upstash "
        f"${UPSTASH_USD_PER_100K:.2f}/100 K commands. VPS: one cx23 (4 GB) for everything, "
        f"{VPS_OTHERS_MIB} MiB left for Redis, PostgreSQL and the system."
    )
