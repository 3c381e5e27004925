"""What running the wizard's backfill preview in worker slices costs against one uninterrupted run.

The same orders in the fake shop (in-process), planned twice on one SQLite ledger: once by one call
of `app.booking.backfill.backfill(dry_run=True)` (what `woobird backfill --dry-run` does), once as
the wizard's task through `app.setup.task_jobs.setup_task_job`, each slice made to run out of time
after SLICE_ORDERS orders (the cursor saved to Redis, the next slice listing from the page before).
Printed: the shop's listing requests of each (a resumed slice lists one page again), the elapsed
time as a ratio sliced/whole, and that both planned the same orders.

    .venv/bin/python bench/bench_task_slices.py            # 1 000 orders, slices of 100
    .venv/bin/python bench/bench_task_slices.py --orders 300 --slice 25

Redis db 9 of BENCH_REDIS_URL's server is flushed before and after; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _common import BENCH_REDIS_URL, header, sqlite_database, table

from app.booking.backfill import backfill
from app.queue import connect
from app.runtime import build_services
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import load_settings
from app.setup import task_jobs, tasks
from tests.factories import order_document

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
REDIS_URL = BENCH_REDIS_URL.rsplit("/", 1)[0] + "/9"


def out_of_time_after(orders: int) -> Callable[[int], Callable[[], bool]]:
    def deadline(_timeout: int) -> Callable[[], bool]:
        looks = itertools.count(1)
        return lambda: next(looks) > orders

    return deadline


async def measure(orders: int, slice_orders: int, url: str) -> None:
    shop, moneybird = ShopSandbox(ping_on_create=False), MoneybirdSandbox()
    for n in range(orders):
        shop.add_order(order_document(10_000 + n, paid=SINCE + timedelta(minutes=n)))
    settings = load_settings(
        _env_file=None,
        database_url=url,
        redis_url=REDIS_URL,
        woocommerce_url=shop.url,
        woocommerce_consumer_key=shop.consumer_key,
        woocommerce_consumer_secret=shop.consumer_secret,
        moneybird_api_token=moneybird.token,
        moneybird_administration_id=moneybird.administration_id,
        log_level="WARNING",
    )
    redis = connect(REDIS_URL)
    await redis.flushdb()
    services = await build_services(
        settings,
        redis,
        shop_transport=httpx.ASGITransport(app=create_shop_app(shop)),
        moneybird_transport=sandbox_transport(moneybird),
    )
    try:
        listed = len(shop.calls("GET /orders"))
        started = time.perf_counter()
        whole = await backfill(services, since=SINCE, dry_run=True)
        whole_seconds = time.perf_counter() - started
        whole_pages = len(shop.calls("GET /orders")) - listed

        task_jobs.slice_deadline = out_of_time_after(slice_orders)  # type: ignore[assignment]
        listed = len(shop.calls("GET /orders"))
        started = time.perf_counter()
        await tasks.start_task(redis, "history-preview", since=SINCE.isoformat())
        ctx = {"redis": redis, "services": services}
        slices = 0
        while True:
            slices += 1
            await task_jobs.setup_task_job(ctx, "history-preview", slices)
            status = await tasks.read_task(redis, "history-preview")
            assert status is not None
            if not status.active:
                break
        sliced_seconds = time.perf_counter() - started
        sliced_pages = len(shop.calls("GET /orders")) - listed
    finally:
        await services.aclose()
        await redis.flushdb()
        await redis.aclose()
    assert status.state == "done", status.message
    assert status.counts["would_book"] == whole.progress.queued == orders
    header(
        "Backfill preview: one run against worker slices",
        [
            f"{orders} orders, slices of {slice_orders} orders, 100 orders a page, SQLite ledger",
            f"Redis {REDIS_URL}",
        ],
    )
    table(
        ["run", "slices", "listing requests", "seconds", "would book"],
        [
            ["one call", "1", str(whole_pages), f"{whole_seconds:.2f}", str(whole.progress.queued)],
            [
                "worker slices",
                str(slices),
                str(sliced_pages),
                f"{sliced_seconds:.2f} ({sliced_seconds / whole_seconds:.2f}×)",
                str(status.counts["would_book"]),
            ],
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--slice", type=int, default=100, help="orders a slice handles before its time is up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = sqlite_database(Path(folder))  # migrated (alembic runs its own event loop)
        asyncio.run(measure(args.orders, args.slice, url))


if __name__ == "__main__":
    main()
