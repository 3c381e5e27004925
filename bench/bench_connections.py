"""Fifty shops on one woobird (issue #22): fairness, rate-limit use, memory, scaling and what it costs.

One deployment as in production: PostgreSQL, Redis, one web process (uvicorn) and two workers
(`python -m workers`), real subprocesses. Fifty fake shops and fifty fake Moneybird
administrations (bench/_many.py), each administration with its own token and its own rate limit,
scaled down to 15 requests per 10 s (`--limit`; Moneybird's is 150 per 5 minutes), answering after
20 ms. Ten backfills then ask for 15 requests a second together: the workers must book faster
than that for each administration's limit to be what bounds its backfill (at 30 per 10 s on a
loaded 2-core VM they did not: the share measured the workers, not the limiter).
Connection 1 is the environment's; 49 more are added with `app.connections.add_connection`.

1. One connection: the same deployment with only the environment's connection books a warm-up of
   50 orders and then the fresh orders (one every 250 ms), its limit out of the way (one
   administration's limit would be all it measured); the web's and workers' peak RSS
   (VmHWM) is the baseline for memory.
2. Fifty connections: a warm-up order for each connection, then the fresh orders spread over the
   40 idle connections (the baseline for latency, "idle deployment"), peak RSS again (goal ≤ 1.2×
   the one-connection figures); then 10 connections backfill their history at once
   (`app.booking.backfill.backfill`, as `woobird backfill --connection NAME` does, from this
   process) and, while they do, the same fresh orders go to the idle connections: p95 webhook →
   paid against the idle baseline (goal ≤ 1.5×). Each backfilling administration's share of its
   allowed rate over the steady middle of its backfill (goal ≥ 95 %) and the 429s (goal 0).
3. Scaling: the limits raised out of the way (woobird's and the fakes'), bursts of orders spread
   over 10 connections, booked with 1, 2 and 4 workers: orders booked per minute, as a ratio
   against one worker.
4. Costs: from those figures, one deployment carrying 1, 10 and 100 shops priced with the README's
   price table (bench/_costs.py).

A fresh order is timed from its signed webhook's POST to the moment the fake Moneybird handed over
its answer to the payment (the request log's `answered`). The peak number of PostgreSQL connections
the deployment holds is printed too.

    .venv/bin/python bench/bench_connections.py            # ~9 minutes
    .venv/bin/python bench/bench_connections.py --quick    # ~5 minutes: shorter backfills, fewer orders
    .venv/bin/python bench/bench_connections.py --limit 30 --idle-redis 1:19,50:194
    BENCH_LOG_LEVEL=INFO .venv/bin/python bench/bench_connections.py --quick --keep-logs /tmp/logs

Each goal is printed met or MISSED, so a run after a change (fair queueing between connections)
reads against the README's figures of the run before it.

Redis: BENCH_CONNECTIONS_REDIS_URL (default db 10 of BENCH_REDIS_URL's server), flushed before and
after. PostgreSQL: BENCH_CONNECTIONS_POSTGRES_URL (default database `bench_connections` on
BENCH_POSTGRES_ADMIN_URL's server), dropped and created again; the deployment opens many
connections to it (see the printed peak), so a server shared with others needs room for them.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import redis as sync_redis
from _common import (
    BENCH_POSTGRES_ADMIN_URL,
    BENCH_REDIS_URL,
    base_env,
    header,
    percentile,
    table,
)
from _costs import IDLE_REDIS_PER_MINUTE, Footprint, cost_table
from _many import (
    Orders,
    PostgresConnections,
    Tenant,
    add_connections,
    base_settings,
    deployment,
    environment_values,
    fakes,
    fresh_postgres,
    rss,
    to_first_call,
    wait_paid,
)
from bench_backfill import fill_shop
from sqlalchemy import text

from app.booking.backfill import backfill
from app.connection_scope import contact_book_of
from app.db import create_engine, session_factory
from app.logs import configure_logging
from app.queue import connect
from app.runtime import build_services, for_connection
from app.settings import REPO_ROOT, Settings, normalise_database_url
from app.settings_live import LiveSettings
from app.settings_store import administrations_of

CONNECTIONS = 50
BACKFILLING = 10
# Each administration's limit, scaled down from Moneybird's 150 per 300 s (--limit changes the 15).
LIMIT, WINDOW = 15, 10.0
MONEYBIRD_WINDOW_SECONDS = 300.0  # Moneybird's own: 150 requests per 5 minutes
LATENCY_SECONDS = 0.02
WORKERS = 2
SCALING_WORKERS = (1, 2, 4)
SCALING_CONNECTIONS = 10
INTERVAL_SECONDS = 0.25
# The backfills' first seconds (reference data, the first burst) pass before the fresh orders start.
RAMP_SECONDS = 10.0
EDGE_SHARE = 0.15  # ramp-up and tail of each backfill, left out of its share of the rate
# What the deployment and the backfills opened at most in a run (44 since one engine per worker;
# 178 before it), with room to spare for whoever else uses the server.
NEEDS_POSTGRES_CONNECTIONS = 60
REDIS_URL = os.environ.get("BENCH_CONNECTIONS_REDIS_URL", BENCH_REDIS_URL.rsplit("/", 1)[0] + "/10")
POSTGRES_URL = os.environ.get(
    "BENCH_CONNECTIONS_POSTGRES_URL", BENCH_POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/bench_connections"
)


# ── backfills ────────────────────────────────────────────────────────────────────────────────


@dataclass
class Backfilled:
    tenant: Tenant
    queued: int = 0
    booked: int = 0
    started: float = 0.0
    finished: float = 0.0


async def _backfill_all(base: Settings, tenants: Sequence[Tenant], since: datetime) -> list[Backfilled]:
    redis = connect(REDIS_URL)
    engine = create_engine(base.database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        administrations = await administrations_of(session, first=base)

    async def one(tenant: Tenant) -> Backfilled:
        result = Backfilled(tenant)
        settings = await LiveSettings(base, sessions, connection_id=tenant.connection_id).load()
        built = await build_services(settings, redis, environment=base, connection_id=tenant.connection_id)
        services = for_connection(
            built,
            connection_id=tenant.connection_id,
            contact_book_id=contact_book_of(tenant.connection_id, administrations),
        )
        result.started = time.time()
        try:
            report = await backfill(services, since=since, wait=True)
        finally:
            await built.aclose()
        result.finished = time.time()
        result.queued, result.booked = report.progress.queued, report.progress.booked
        return result

    try:
        return list(await asyncio.gather(*(one(tenant) for tenant in tenants)))
    finally:
        await engine.dispose()
        await redis.aclose()


def steady_share(tenant: Tenant, *, started: float, finished: float, limit: int) -> tuple[float, int, float]:
    """Share of the allowed rate in the longest whole number of windows inside the backfill's middle.

    The fake allows at most `limit` in any WINDOW, so k whole windows hold at most k·limit wherever
    they start.
    """
    with tenant.moneybird.lock:
        stamps = sorted(
            r.time for r in tenant.moneybird.requests if r.status != 429 and started <= r.time <= finished
        )
    if len(stamps) < 2:
        return float("nan"), 0, 0.0
    span = stamps[-1] - stamps[0]
    start = stamps[0] + EDGE_SHARE * span
    windows = int((1 - 2 * EDGE_SHARE) * span // WINDOW)
    if windows == 0:
        return float("nan"), 0, 0.0
    end = start + windows * WINDOW
    inside = sum(1 for s in stamps if start <= s < end)
    return inside / (windows * limit), inside, windows * WINDOW


# ── the run ──────────────────────────────────────────────────────────────────────────────────


@dataclass
class Results:
    limit: int
    fresh: int
    backfill_orders: int
    one_latency: list[float] = field(default_factory=list)
    one_rss: dict[str, float] = field(default_factory=dict)
    one_postgres: int = 0
    idle_latency: list[float] = field(default_factory=list)
    idle_first: tuple[list[float], list[int]] = ([], [])
    busy_first: tuple[list[float], list[int]] = ([], [])
    busy_latency: list[float] = field(default_factory=list)
    busy_missing: int = 0
    many_rss: dict[str, float] = field(default_factory=dict)
    many_postgres_idle: int = 0
    many_postgres: int = 0
    backfills: list[Backfilled] = field(default_factory=list)
    shares: list[tuple[str, float, int, float, int]] = field(default_factory=list)
    throttled: int = 0
    scaling: list[tuple[int, int, float, dict[str, float], int]] = field(default_factory=list)
    redis_per_order: float = 0.0


def flush() -> None:
    client = sync_redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def redis_commands() -> int:
    client = sync_redis.Redis.from_url(REDIS_URL)
    stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]
    client.close()
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_monitor"))


def room_on_postgres() -> None:
    """Refuse a PostgreSQL server that would run out of connections (a shared one fails others' too)."""

    async def read() -> int:
        engine = create_engine(normalise_database_url(BENCH_POSTGRES_ADMIN_URL), pool_size=1)
        async with engine.connect() as connection:
            value = (await connection.execute(text("SHOW max_connections"))).scalar_one()
        await engine.dispose()
        return int(value)

    allowed = asyncio.run(read())
    if allowed < NEEDS_POSTGRES_CONNECTIONS:
        raise SystemExit(
            f"the PostgreSQL server of BENCH_POSTGRES_ADMIN_URL allows {allowed} connections and this run "
            f"needs up to {NEEDS_POSTGRES_CONNECTIONS}: point BENCH_POSTGRES_ADMIN_URL at a server with "
            "max_connections of at least that (README, Many shops on one deployment); nothing was run"
        )


def run(args: argparse.Namespace, work: Path) -> Results:
    results = Results(limit=args.limit, fresh=args.fresh, backfill_orders=args.backfill_orders)
    fresh_postgres(POSTGRES_URL, BENCH_POSTGRES_ADMIN_URL)
    flush()
    orders = Orders()
    with (
        fakes(CONNECTIONS, rate_limit=(args.limit, WINDOW), latency_seconds=LATENCY_SECONDS) as fake,
        PostgresConnections(POSTGRES_URL) as pg,
    ):
        values = environment_values(fake, redis_url=REDIS_URL, database_url=POSTGRES_URL)
        values |= {"MONEYBIRD_RATE_LIMIT": f"{args.limit}/{WINDOW:g}", "RECONCILE_INTERVAL_SECONDS": "3600"}
        env = base_env(PYTHONPATH=str(REPO_ROOT), **values)
        first, *others = fake.tenants
        busy, idle = others[:BACKFILLING], [first, *others[BACKFILLING:]]

        unlimited = base_env(PYTHONPATH=str(REPO_ROOT), **(values | {"MONEYBIRD_RATE_LIMIT": "100000/300"}))
        print(f"1. one connection: {CONNECTIONS} warm-up orders, then {args.fresh} fresh ones", flush=True)
        # One administration's limit would be all this measures (130 orders in a minute): out of the way.
        first.moneybird.rate_limit = None
        with deployment(unlimited, work, workers=WORKERS, tag="one") as dep:
            wait_paid(orders.paced(dep, [first], CONNECTIONS, every=0.05), timeout=120)
            measured = orders.paced(dep, [first], args.fresh, every=INTERVAL_SECONDS)
            results.one_latency = list(wait_paid(measured, timeout=120).values())
            results.one_rss = rss(dep)
        results.one_postgres = pg.reset()
        first.moneybird.rate_limit = (args.limit, WINDOW)

        print(
            f"2. {CONNECTIONS} connections: add them, one warm-up order each, fresh orders idle", flush=True
        )
        add_connections(base_settings(values), fake.tenants)
        since = datetime.now(UTC) - timedelta(days=30)
        for tenant in busy:
            fill_shop(tenant.shop, orders=args.backfill_orders, since=since, seed=tenant.connection_id)
        with deployment(env, work, workers=WORKERS, tag="many") as dep:
            wait_paid(orders.paced(dep, fake.tenants, CONNECTIONS, every=0.05), timeout=180)
            commands = redis_commands()
            measured = orders.paced(dep, idle, args.fresh, every=INTERVAL_SECONDS)
            latencies = wait_paid(measured, timeout=120)
            results.idle_latency = list(latencies.values())
            results.idle_first = to_first_call(measured, latencies)
            results.redis_per_order = (redis_commands() - commands) / max(1, args.fresh)
            results.many_rss = rss(dep)
            results.many_postgres_idle = pg.reset()
            for tenant in fake.tenants:
                tenant.moneybird.count_429 = 0
            print(
                f"   {BACKFILLING} backfills of {args.backfill_orders} orders each, fresh orders beside them",
                flush=True,
            )
            outcome: list[list[Backfilled]] = []
            failure: list[BaseException] = []

            def backfills() -> None:
                try:
                    outcome.append(asyncio.run(_backfill_all(base_settings(values), busy, since)))
                except BaseException as exc:  # shown in the main thread
                    failure.append(exc)

            thread = threading.Thread(target=backfills, name="backfills", daemon=True)
            thread.start()
            time.sleep(RAMP_SECONDS)
            measured = orders.paced(dep, idle, args.fresh, every=INTERVAL_SECONDS)
            latencies = wait_paid(measured, timeout=args.backfill_orders * 4 + 180)
            results.busy_latency = list(latencies.values())
            results.busy_first = to_first_call(measured, latencies)
            results.busy_missing = len(measured) - len(latencies)
            thread.join(args.backfill_orders * 4 + 300)
            if failure:
                raise failure[0]
            if not outcome:
                raise RuntimeError("the backfills did not finish in time")
            results.backfills = outcome[0]
        results.many_postgres = pg.reset()
        results.throttled = sum(t.moneybird.count_429 for t in fake.tenants)
        for done in results.backfills:
            share, inside, seconds = steady_share(
                done.tenant, started=done.started, finished=done.finished, limit=args.limit
            )
            results.shares.append((done.tenant.name, share, inside, seconds, done.tenant.moneybird.count_429))

        print(
            f"3. scaling: limits out of the way, {args.scale_orders} orders "
            f"over {SCALING_CONNECTIONS} connections",
            flush=True,
        )
        for tenant in fake.tenants:
            tenant.moneybird.rate_limit = None
        shops = idle[1 : 1 + SCALING_CONNECTIONS]
        for workers in SCALING_WORKERS:
            with deployment(unlimited, work, workers=workers, tag=f"scale{workers}") as dep:
                time.sleep(3.0)  # the workers' start-up is not what is measured
                started = time.time()
                burst = orders.paced(dep, shops, args.scale_orders, every=0.0)
                latencies = wait_paid(burst, timeout=600)
                last = max((burst[p].posted_at + v for p, v in latencies.items()), default=time.time())
                results.scaling.append((workers, len(latencies), last - started, rss(dep), pg.reset()))
    flush()
    return results


# ── report ───────────────────────────────────────────────────────────────────────────────────


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(r: Results, *, idle: dict[int, float]) -> None:
    idle_p95, busy_p95 = percentile(r.idle_latency, 0.95), percentile(r.busy_latency, 0.95)
    print()
    print("(a) fresh orders of idle connections, webhook → paid (s)")
    rows = []
    for label, values in (
        ("1 connection, no limit (reference)", r.one_latency),
        (f"{CONNECTIONS} connections, idle deployment (baseline)", r.idle_latency),
        (f"{CONNECTIONS} connections, {BACKFILLING} backfilling", r.busy_latency),
    ):
        rows.append(
            [
                label,
                f"{len(values)}/{r.fresh}",
                f"{percentile(values, 0.5):.2f}",
                f"{percentile(values, 0.95):.2f}",
                f"{max(values, default=float('nan')):.2f}",
            ]
        )
    table(["deployment", "paid", "median", "p95", "max"], rows)
    for label, (waits, calls) in (("idle", r.idle_first), (f"{BACKFILLING} backfilling", r.busy_first)):
        print(
            f"{CONNECTIONS} connections, {label}: POST → the administration's first request median "
            f"{percentile(waits, 0.5):.2f} s, p95 {percentile(waits, 0.95):.2f} s; requests per order "
            f"median {percentile(calls, 0.5):.0f}"
        )
    ratio = busy_p95 / idle_p95 if idle_p95 else float("nan")
    print(
        f"p95 while {BACKFILLING} connections backfill / p95 idle: {ratio:.2f}x "
        f"(goal ≤ 1.5x: {_verdict(ratio <= 1.5)})"
    )
    if r.busy_missing:
        print(
            f"  {r.busy_missing} fresh orders were not paid before the timeout (not in the p95: it is worse)"
        )
    print()
    print(f"(b) each backfilling administration's use of its limit ({r.limit}/{WINDOW:g} s), steady middle")
    rows = []
    for name, share, inside, seconds, throttled in r.shares:
        done = next(b for b in r.backfills if b.tenant.name == name)
        rows.append(
            [
                name,
                f"{done.booked}/{done.queued}",
                f"{done.finished - done.started:.0f} s",
                f"{share:.1%} ({inside} in {seconds:.0f} s)",
                str(throttled),
            ]
        )
    table(["connection", "booked/queued", "backfill took", "share of the limit", "429s"], rows)
    shares = [s for _, s, _, _, _ in r.shares]
    lowest = min(shares, default=float("nan"))
    print(
        f"lowest share {lowest:.1%}, median {percentile(shares, 0.5):.1%} "
        f"(goal ≥ 95 %: {_verdict(lowest >= 0.95)}); 429 answers during the backfills, all "
        f"administrations: {r.throttled} (goal 0: {_verdict(r.throttled == 0)})"
    )
    # A sliding window is used in full only when each slot is taken again the moment it frees; what a
    # slot waits beyond that (pick-up, the booking's own pace) is a fixed delay per turn, and so weighs
    # thirty times more on this 10 s window than on Moneybird's 300 s one.
    median_share = percentile(shares, 0.5)
    if 0 < median_share < 1:
        delay = WINDOW * (1 / median_share - 1)
        real = MONEYBIRD_WINDOW_SECONDS / (MONEYBIRD_WINDOW_SECONDS + delay)
        print(
            f"each slot waits {delay:.2f} s beyond its window (median share); the same wait on Moneybird's "
            f"{MONEYBIRD_WINDOW_SECONDS:g} s window uses {real:.1%} of it (derived, not measured)"
        )
    print()
    print("(c) memory: peak RSS (VmHWM, MiB) after the same orders booked")
    worker_names = [k for k in r.one_rss if k.startswith("worker")]
    one_worker = max(r.one_rss[k] for k in worker_names)
    many_worker = max(r.many_rss[k] for k in worker_names)
    web_ratio = r.many_rss["web"] / r.one_rss["web"]
    worker_ratio = many_worker / one_worker
    table(
        ["process", "1 connection", f"{CONNECTIONS} connections", "ratio", "goal ≤ 1.2x"],
        [
            [
                "web",
                f"{r.one_rss['web']:.0f}",
                f"{r.many_rss['web']:.0f}",
                f"{web_ratio:.2f}x",
                _verdict(web_ratio <= 1.2),
            ],
            [
                "worker (largest)",
                f"{one_worker:.0f}",
                f"{many_worker:.0f}",
                f"{worker_ratio:.2f}x",
                _verdict(worker_ratio <= 1.2),
            ],
        ],
    )
    print(
        f"PostgreSQL connections to the ledger (peak): {r.one_postgres} with 1 connection; "
        f"with {CONNECTIONS}, "
        f"{r.many_postgres_idle} (web + {WORKERS} workers) and {r.many_postgres} during the backfills "
        f"(with this process's {BACKFILLING} backfills)"
    )
    print()
    print(f"(d) scaling: orders booked per minute, limits out of the way, {SCALING_CONNECTIONS} connections")
    one = r.scaling[0][1] / r.scaling[0][2] * 60 if r.scaling else float("nan")
    rows = []
    for workers, booked, seconds, memory, postgres in r.scaling:
        rate = booked / seconds * 60
        largest = max(v for k, v in memory.items() if k.startswith("worker"))
        rows.append(
            [
                str(workers),
                f"{booked}",
                f"{seconds:.1f} s",
                f"{rate:.0f}",
                f"{rate / one:.2f}x",
                f"{largest:.0f}",
                str(postgres),
            ]
        )
    table(
        [
            "workers",
            "booked",
            "first POST → last paid",
            "orders/min",
            "vs 1 worker",
            "worker RSS MiB",
            "PG conns",
        ],
        rows,
    )
    print(
        f"Redis commands per booked order, {CONNECTIONS} connections idle "
        "(all processes, INFO commandstats): "
        f"{r.redis_per_order:.0f}"
    )
    print()
    footprint = Footprint(
        web_mib=(r.one_rss["web"], r.many_rss["web"]),
        worker_mib=(one_worker, many_worker),
        connections=CONNECTIONS,
        orders_per_minute_per_worker=one,
        redis_per_order=r.redis_per_order,
    )
    cost_table(footprint, idle)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds the `with` blocks, which stop the processes and the fakes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="backfills of 30 orders, 30 fresh orders, 50 per scaling round"
    )
    parser.add_argument("--backfill-orders", type=int, help="history of each backfilling shop (default 80)")
    parser.add_argument("--fresh", type=int, help="fresh orders per measurement (default 80)")
    parser.add_argument(
        "--idle-redis",
        default=",".join(f"{n}:{v:g}" for n, v in IDLE_REDIS_PER_MINUTE.items()),
        help="idle Redis commands a minute by connections, as bench_idle.py --connections 50 printed "
        "them (for the costs)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=LIMIT,
        help=f"each administration's requests per {WINDOW:g} s (default {LIMIT})",
    )
    parser.add_argument("--scale-orders", type=int, help="orders per scaling round (default 150)")
    parser.add_argument(
        "--keep-logs",
        type=Path,
        help="copy the processes' logs here (with BENCH_LOG_LEVEL=INFO they hold arq's line per job)",
    )
    args = parser.parse_args(argv)
    args.backfill_orders = args.backfill_orders or (30 if args.quick else 80)
    args.fresh = args.fresh or (30 if args.quick else 80)
    args.scale_orders = args.scale_orders or (50 if args.quick else 150)
    configure_logging(level="WARNING")
    room_on_postgres()
    header(
        f"bench_connections — {CONNECTIONS} shops on one woobird: fairness, limits, memory, scaling "
        "(issue #22)",
        [
            f"PostgreSQL {POSTGRES_URL.rsplit('@', 1)[-1]}, Redis {REDIS_URL}, "
            f"web + {WORKERS} workers (subprocesses)",
            f"{CONNECTIONS} fake shops and administrations, each limited to {args.limit}/{WINDOW:g} s, "
            f"{LATENCY_SECONDS * 1000:.0f} ms per Moneybird answer",
            f"{BACKFILLING} backfills of {args.backfill_orders} orders; "
            f"{args.fresh} fresh orders per measurement, "
            f"one every {INTERVAL_SECONDS * 1000:.0f} ms; scaling rounds of {args.scale_orders} orders",
        ],
    )
    signal.signal(signal.SIGTERM, _sigterm)
    with tempfile.TemporaryDirectory(prefix="bench-connections-") as tmp:
        work = Path(tmp)
        try:
            results = run(args, work)
        except (Exception, KeyboardInterrupt):
            for log in sorted(work.glob("*.log")):
                print(f"--- {log.name} (last lines)", file=sys.stderr)
                print("\n".join(log.read_text(errors="replace").splitlines()[-10:]), file=sys.stderr)
            raise
        finally:
            flush()
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in work.glob("*.log"):
                    shutil.copy(log, args.keep_logs / log.name)
    report(results, idle={int(n): float(v) for n, v in (p.split(":") for p in args.idle_redis.split(","))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
