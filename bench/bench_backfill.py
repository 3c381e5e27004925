"""How much of Moneybird's rate limit a backfill uses with three real workers (issue #5).

The fake Moneybird (rate limit scaled down to 150 requests per 10 s, 20 ms per request) and the
fake shop are served over real HTTP from this process; three `python -m workers`
subprocesses book what `app.booking.backfill.backfill(...)` queues, sharing one limiter in Redis.
The orders are built with WooCommerce's checkout arithmetic, a mix of new and returning customers
(a new one costs two more Moneybird requests: the e-mail lookup and the contact).

Printed: the share of the allowed rate used over the steady middle of the run (requests in a
whole number of windows ÷ 150 per window; goal ≥ 95 %), the 429s the fake answered (goal 0),
orders booked per minute, each worker's peak RSS, and the baseline measured in the same run: the
time the requests the run made would take at exactly 150 per 10 s, as a ratio actual/ideal.

    .venv/bin/python bench/bench_backfill.py                 # 1 000 orders, ~5 minutes
    .venv/bin/python bench/bench_backfill.py --quick         # 200 orders, ~1.5 minutes
    .venv/bin/python bench/bench_backfill.py --database postgres
    .venv/bin/python bench/bench_backfill.py --orders 60 --limit 15 --workers 2   # bench_connections' limit

Redis db 7 is flushed before and after; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType

import redis as sync_redis
from _common import PYTHON, base_env, child, header, migrate, peak_rss_mib, percentile, sqlite_database, table
from sqlalchemy import text

from app.booking.backfill import BackfillProgress, backfill
from app.db import create_engine
from app.queue import connect
from app.runtime import build_services
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.settings import REPO_ROOT, load_settings, normalise_database_url
from app.tokens import new_token
from tests.server import serve_in_thread

LIMIT, WINDOW = 150, 10.0
LATENCY_SECONDS = 0.02
WORKERS = 3
RETURNING_SHARE = 0.4
REDIS_URL = os.environ.get("BENCH_BACKFILL_REDIS_URL", "redis://127.0.0.1:6379/7")
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_URL = os.environ.get(
    "BENCH_BACKFILL_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/bench_backfill"
)
WORKER = [PYTHON, "-m", "workers"]
# Ramp-up (reference data, the first burst) and the tail (demand running out) are left out.
EDGE_SHARE = 0.15


@dataclass(frozen=True)
class Measured:
    orders: int
    booked: int
    seconds: float
    requests: int
    throttled: int
    steady_requests: int
    steady_seconds: float
    rss_mib: list[float]
    invoices: int
    duplicated: int
    contacts: int
    customers: int
    calls_by_route: Counter[str]
    throttled_at: list[float]  # seconds after the first request, to tell ramp-up from steady state
    slot_waits: list[float]  # each slot's wait beyond its window before it was taken again, steady middle


# ── the shop's history ───────────────────────────────────────────────────────────────────────


def customers(count: int) -> list[Customer]:
    return [
        Customer(
            first_name=f"Klant{n}",
            last_name="de Vries",
            email=f"klant{n}@example.nl",
            address_1=f"Dorpsstraat {n % 200 + 1}",
            city="Utrecht",
            postcode="3511 AB",
        )
        for n in range(count)
    ]


def fill_shop(shop: ShopSandbox, *, orders: int, since: datetime, seed: int = 5) -> int:
    """`orders` paid orders after `since`; returns how many distinct customers placed them."""
    rng = random.Random(seed)
    pool = customers(orders)
    used = 0
    span = (datetime.now(UTC) - since).total_seconds() - 3600
    catalog = [
        CartItem("Wollen plaid", Decimal("59.00"), sku="PLAID"),
        CartItem("Kookboek", Decimal("24.50"), tax_class="reduced-rate", sku="BOEK"),
        CartItem("Theedoek", Decimal("7.95"), sku="DOEK"),
    ]
    for n in range(orders):
        if used and rng.random() < RETURNING_SHARE:
            customer = pool[rng.randrange(used)]
        else:
            customer, used = pool[used], used + 1
        paid = since + timedelta(seconds=span * (n + 1) / (orders + 1))
        items = [
            CartItem(i.name, i.price, rng.randint(1, 3), i.tax_class, sku=i.sku)
            for i in rng.sample(catalog, 2)
        ]
        document = build_order(
            order_id=5000 + n,
            customer=customer,
            items=items,
            shipping=[ShippingMethod("PostNL pakket", Decimal("4.95"))],
            created_at=paid - timedelta(minutes=2),
            paid_at=paid,
            completed_at=paid + timedelta(hours=4),
        )
        shop.add_order(document)
    return used


# ── databases and workers ────────────────────────────────────────────────────────────────────


def postgres_database() -> str:
    async def prepare() -> None:
        name = POSTGRES_URL.rsplit("/", 1)[1]
        admin = create_engine(normalise_database_url(POSTGRES_ADMIN_URL), pool_size=1)
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(prepare())
    migrate(POSTGRES_URL)
    return POSTGRES_URL


def woobird_values(
    *, shop: ShopSandbox, shop_url: str, moneybird: MoneybirdSandbox, mb_url: str, db: str
) -> dict[str, str]:
    """The settings every worker and the backfill run with (lower-case names, as in Settings)."""
    return {
        "woocommerce_url": shop_url,
        "woocommerce_consumer_key": shop.consumer_key,
        "woocommerce_consumer_secret": shop.consumer_secret,
        "woocommerce_webhook_secret": "bench-backfill-webhook-secret-8d21",
        "moneybird_api_url": f"{mb_url}/api/v2",
        "moneybird_api_token": moneybird.token,
        "moneybird_administration_id": moneybird.administration_id,
        "moneybird_rate_limit": f"{LIMIT}/{WINDOW:g}",
        "redis_url": REDIS_URL,
        "database_url": db,
        "admin_token": new_token(),
        # In the future: only what the backfill queues is booked.
        "sync_since": (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "log_level": "WARNING",
    }


@contextlib.contextmanager
def workers(env: dict[str, str], directory: Path) -> Iterator[list[int]]:
    with contextlib.ExitStack() as stack:
        pids = []
        for n in range(WORKERS):
            process = stack.enter_context(child(WORKER, env=env, log_path=directory / f"worker{n}.log"))
            pids.append(process.pid)
        yield pids


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds the `with` blocks, which stop the workers and servers


# ── the run ──────────────────────────────────────────────────────────────────────────────────


async def run_backfill(
    values: dict[str, str], *, since: datetime, budget_seconds: float
) -> tuple[float, BackfillProgress]:
    settings = load_settings(_env_file=None, **values)
    redis = connect(settings.redis_url)
    services = await build_services(settings, redis)
    started = time.monotonic()
    try:
        report = await asyncio.wait_for(backfill(services, since=since, wait=True), budget_seconds)
    finally:
        await services.aclose()
        await redis.aclose()
    return time.monotonic() - started, report.progress


def steady_middle(stamps: list[float]) -> tuple[int, float]:
    """Requests in the longest whole number of windows inside the run's middle, and that length.

    Fewer than LIMIT requests in any WINDOW, so k windows hold at most k·LIMIT wherever they
    start: a whole number of windows measures the share without depending on alignment.
    """
    if len(stamps) < 2:
        return 0, 0.0
    first, last = stamps[0], stamps[-1]
    span = last - first
    start = first + EDGE_SHARE * span
    windows = int((1 - 2 * EDGE_SHARE) * span // WINDOW)
    end = start + windows * WINDOW
    return sum(1 for s in stamps if start <= s < end), windows * WINDOW


def slot_waits(stamps: list[float]) -> list[float]:
    """How long each slot stayed free after its window, in the run's middle: the limit allows a
    request LIMIT requests after another once WINDOW has passed, so that is the time lost."""
    first, last = stamps[0], stamps[-1]
    start, end = first + EDGE_SHARE * (last - first), last - EDGE_SHARE * (last - first)
    return [
        stamps[i] - stamps[i - LIMIT] - WINDOW for i in range(LIMIT, len(stamps)) if start <= stamps[i] <= end
    ]


def measure(args: argparse.Namespace, directory: Path) -> Measured:
    since = datetime.now(UTC) - timedelta(days=30)
    moneybird = MoneybirdSandbox(rate_limit=(LIMIT, WINDOW), latency_seconds=LATENCY_SECONDS)
    shop = ShopSandbox(ping_on_create=False)
    distinct = fill_shop(shop, orders=args.orders, since=since)
    db = postgres_database() if args.database == "postgres" else sqlite_database(directory)
    flush()
    with (
        serve_in_thread(create_shop_app(shop)) as shop_url,
        serve_in_thread(create_moneybird_app(moneybird)) as mb_url,
    ):
        shop.url = shop_url
        values = woobird_values(shop=shop, shop_url=shop_url, moneybird=moneybird, mb_url=mb_url, db=db)
        env = base_env(PYTHONPATH=str(REPO_ROOT), **{k.upper(): v for k, v in values.items()})
        with workers(env, directory) as pids:
            timeout = args.timeout or 3 * ideal_seconds(args.orders * 5) + 120
            seconds, progress = asyncio.run(run_backfill(values, since=since, budget_seconds=timeout))
            rss = [peak_rss_mib(pid) for pid in pids]
    served = [r for r in moneybird.requests if r.status != 429]
    stamps = sorted(r.time for r in served)
    steady_requests, steady_seconds = steady_middle(stamps)
    references = Counter(inv.get("reference") for inv in moneybird.sales_invoices.values())
    return Measured(
        orders=args.orders,
        booked=progress.booked,
        seconds=seconds,
        requests=len(served),
        throttled=moneybird.count_429,
        steady_requests=steady_requests,
        steady_seconds=steady_seconds,
        rss_mib=rss,
        invoices=len(references),
        duplicated=sum(1 for n in references.values() if n > 1),
        contacts=len(moneybird.contacts),
        customers=distinct,
        calls_by_route=Counter(r.route or r.path for r in served),
        throttled_at=[round(r.time - stamps[0], 1) for r in moneybird.requests if r.status == 429],
        slot_waits=slot_waits(stamps),
    )


def ideal_seconds(requests: int) -> float:
    return requests / LIMIT * WINDOW


def flush() -> None:
    client = sync_redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def report(m: Measured, args: argparse.Namespace) -> None:
    share = m.steady_requests / (LIMIT * m.steady_seconds / WINDOW) if m.steady_seconds else float("nan")
    ideal = ideal_seconds(m.requests)
    # The floor: a new customer's order costs 4 requests (contact, invoice, send, payment), a
    # returning one's 3; the customers' first orders are the new ones.
    floor = 4 * m.customers + 3 * (m.orders - m.customers)
    table(
        ["figure", "value", "goal"],
        [
            ["orders booked / queued", f"{m.booked} / {m.orders}", "all"],
            [
                "invoices in Moneybird (references duplicated)",
                f"{m.invoices} ({m.duplicated})",
                "= orders (0)",
            ],
            ["contacts / distinct customers", f"{m.contacts} / {m.customers}", "equal"],
            ["Moneybird requests (per order)", f"{m.requests} ({m.requests / max(1, m.orders):.2f})", ""],
            [
                "floor: 4 per new customer, 3 per returning (per order)",
                f"{floor} ({floor / max(1, m.orders):.2f}); actual / floor {m.requests / max(1, floor):.3f}",
                "<= 1.05",
            ],
            [
                "share of the allowed rate, steady middle",
                f"{share:.1%} ({m.steady_requests} in {m.steady_seconds:.0f} s)",
                ">= 95 %",
            ],
            ["429 responses (s after the first request)", f"{m.throttled} {m.throttled_at or ''}", "0"],
            [
                "a slot's wait beyond its window, steady middle: median, p95",
                f"{percentile(m.slot_waits, 0.5):.2f} s, {percentile(m.slot_waits, 0.95):.2f} s"
                if m.slot_waits
                else "-",
                "",
            ],
            ["orders booked per minute", f"{m.booked / m.seconds * 60:.1f}", ""],
            ["elapsed (backfill start → all seen booked)", f"{m.seconds:.1f} s", ""],
            [f"baseline: requests at exactly {LIMIT}/{WINDOW:g} s", f"{ideal:.1f} s", ""],
            ["actual / ideal", f"{m.seconds / ideal:.3f}", "<= 1.05"],
            *[[f"worker {n} peak RSS (VmHWM)", f"{rss:.1f} MiB", ""] for n, rss in enumerate(m.rss_mib)],
        ],
    )
    table(["Moneybird route", "requests"], [[route, str(n)] for route, n in m.calls_by_route.most_common()])


def main() -> int:
    global LIMIT, WINDOW, WORKERS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 orders")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=0, help="seconds; default 3 × the ideal + 2 min")
    parser.add_argument("--limit", type=int, default=LIMIT, help=f"requests per window (default {LIMIT})")
    parser.add_argument("--window", type=float, default=WINDOW, help=f"seconds (default {WINDOW:g})")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"worker processes (default {WORKERS})")
    args = parser.parse_args()
    # The module's figures are what every function reads; the options only change them for this run.
    LIMIT, WINDOW, WORKERS = args.limit, args.window, args.workers
    if args.quick:
        args.orders = 200
    header(
        f"bench_backfill: backfill through {WORKERS} arq workers against a rate-limited fake Moneybird",
        [
            f"{args.orders} orders, ~{RETURNING_SHARE:.0%} by returning customers; "
            f"limit {LIMIT}/{WINDOW:g} s, {LATENCY_SECONDS * 1000:.0f} ms per Moneybird request",
            f"{WORKERS} workers (max_jobs from WorkerSettings), ledger on {args.database}, Redis {REDIS_URL}",
        ],
    )
    signal.signal(signal.SIGTERM, _sigterm)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        directory = Path(tmp)
        try:
            measured = measure(args, directory)
        except (Exception, KeyboardInterrupt):
            for log in sorted(directory.glob("worker*.log")):
                print(f"--- {log.name} (last lines)", file=sys.stderr)
                print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
            raise
        finally:
            flush()
    report(measured, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
