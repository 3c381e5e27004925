"""The backfill as the worker runs it for the wizard: in slices that end before arq's job timeout,
each going on from the cursor the last one left, with the end result of one uninterrupted run."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq import Retry
from arq.connections import ArqRedis
from arq.jobs import Job

from app.booking import backfill as backfill_module
from app.booking.backfill import backfill
from app.constants import JOB_SETUP_TASK
from app.runtime import build_services, for_connection
from app.sandbox.moneybird import sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.schema import OrderState
from app.setup import task_jobs, tasks
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.factories import order_document
from tests.harness import Harness, open_harness

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
PAID = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
ORDERS = 8


class Killed(BaseException):
    """The worker process dies: nothing after this point of the slice runs."""


def stop_after(checks: int, *, then: Callable[[], bool] | None = None) -> Callable[[int], Callable[[], bool]]:
    """A slice deadline that says "out of time" after `checks` looks (each slice its own count)."""

    def deadline(_timeout: int) -> Callable[[], bool]:
        looks = itertools.count(1)
        return lambda: next(looks) > checks if then is None else (next(looks) > checks and then())

    return deadline


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three orders a page, so that slices stop within pages and across them; no second-long polls."""
    monkeypatch.setattr(backfill_module, "PAGE_SIZE", 3)
    monkeypatch.setattr(backfill_module, "POLL_SECONDS", 0.01)


def _cart(order_id: int, *, paid: datetime) -> dict[str, Any]:
    # Three customers over the orders: the preview counts new and returning ones across slices.
    number = order_id % 3
    customer = Customer(
        first_name="Mila", last_name=f"de Boer {number}", email=f"mila{number}@example.nl", city="Zwolle"
    )
    item = CartItem(name="Kaars", price=Decimal("8.95") + order_id % 5, quantity=2, sku="KAARS-1")
    return {
        "order_id": order_id,
        "customer": customer,
        "items": [item],
        "created_at": paid,
        "paid_at": paid,
        "completed_at": paid,
    }


def add_orders(h: Harness) -> list[dict[str, Any]]:
    documents = [h.add_paid_order(**_cart(5000 + n, paid=PAID + timedelta(hours=n))) for n in range(ORDERS)]
    h.add_paid_order(**_cart(5100, paid=SINCE - timedelta(days=2)))  # paid before the range
    return documents


async def drain(h: Harness) -> int:
    """Burst workers until nothing is queued (a slice queues its successor while the worker stops)."""
    ran = 0
    for _ in range(100):
        if not await h.queued():
            return ran
        ran += await h.run_worker()
    raise AssertionError("the queue never emptied")


async def test_a_sliced_preview_ends_as_one_uninterrupted_preview(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as h:
        add_orders(h)
        whole = await backfill(h.services, since=SINCE, dry_run=True)
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(2))

        assert await tasks.start_task(redis, "history-preview", since=SINCE.isoformat())
        slices = await drain(h)
        status = await tasks.read_task(redis, "history-preview")

        assert status is not None
        assert status.state == "done"
        assert slices >= ORDERS // 2  # two orders a slice: it did run in slices
        assert status.counts == {
            "would_book": whole.progress.queued,
            "skipped": whole.progress.skipped,
            "refused": whole.progress.refused,
            "not_in_range": whole.not_in_range,
        }
        assert whole.progress.queued == ORDERS
        # The total, the requests and the new customers, counted across slices as in one go.
        assert status.message == task_jobs._preview_message(h.services, whole)
        assert h.moneybird.calls("POST *") == 0
        assert await redis.exists(tasks.cursor_key("history-preview", 1)) == 0  # cleared at the end


async def test_a_sliced_backfill_books_what_one_run_would_each_once(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as h:
        documents = add_orders(h)
        planned = await backfill(h.services, since=SINCE, dry_run=True)
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(3))

        assert await tasks.start_task(redis, "history", since=SINCE.isoformat())
        slices = await drain(h)
        status = await tasks.read_task(redis, "history")

        assert status is not None
        assert status.state == "done", status.message
        assert slices > ORDERS  # the slices and the bookings
        assert status.counts["queued"] == status.counts["booked"] == ORDERS
        assert status.counts["waiting"] == 0
        booked = {int(d["id"]) for d in documents}
        assert booked == {order_id for order_id, _, _ in planned.would_book}
        for document in documents:
            record = await h.record(int(document["id"]))
            assert record is not None
            assert record.state == OrderState.BOOKED, record.error
            assert record.backfilled
            assert len(h.invoices_for(str(document["number"]))) == 1
        assert len(h.moneybird.sales_invoices) == ORDERS


async def test_a_worker_killed_mid_slice_is_taken_up_again_and_books_nothing_twice(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as h:
        documents = add_orders(h)
        assert await tasks.start_task(redis, "history", since=SINCE.isoformat())
        status = await tasks.load_status(redis, "history", connection_id=1)
        assert status is not None

        def killed() -> bool:
            raise Killed

        # The first slice looks at five orders over two pages (the first listed was paid before the
        # range; the clock is read once more between the pages) and queues four, then its worker dies.
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(6, then=killed))
        with pytest.raises(Killed):
            await task_jobs.setup_task_job({"redis": redis, "services": h.services}, "history", 1)
        queued = [
            r for d in documents if (r := await h.record(int(d["id"]))) and r.state == OrderState.QUEUED
        ]
        assert len(queued) == 4
        assert await redis.exists(tasks.cursor_key("history", 1)) == 0  # it died before writing one

        # arq takes the job up again (it is still in the queue), with the worker booking alongside.
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(3))
        await drain(h)

        status = await tasks.read_task(redis, "history")
        assert status is not None
        assert status.state == "done", status.message
        for document in documents:
            record = await h.record(int(document["id"]))
            assert record is not None
            assert record.state == OrderState.BOOKED, record.error
            assert len(h.invoices_for(str(document["number"]))) == 1
        assert len(h.moneybird.sales_invoices) == ORDERS
        assert h.moneybird.calls("POST /sales_invoices") == ORDERS


async def test_a_slice_run_again_after_queueing_its_successor_only_hands_over(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as h:
        add_orders(h)
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(2))
        assert await tasks.start_task(redis, "history-preview", since=SINCE.isoformat())
        status = await tasks.load_status(redis, "history-preview", connection_id=1)
        assert status is not None
        ctx = {"redis": redis, "services": h.services}
        await task_jobs.setup_task_job(ctx, "history-preview", 1)
        # Slice 2 lost from the queue (Redis lost it), then slice 1 taken up again.
        await redis.delete("arq:job:" + tasks.task_job_id("history-preview", 2, 1))
        await redis.zrem("arq:queue", tasks.task_job_id("history-preview", 2, 1))
        listed = (await tasks.load_status(redis, "history-preview", connection_id=1) or status).done

        again = await task_jobs.setup_task_job(ctx, "history-preview", 1)

        assert again == "superseded by slice 2"
        assert (await tasks.load_status(redis, "history-preview", connection_id=1) or status).done == listed
        assert await redis.exists("arq:job:" + tasks.task_job_id("history-preview", 2, 1))


async def test_a_second_connections_task_never_meets_connection_1s(redis: ArqRedis) -> None:
    since = SINCE.isoformat()

    assert await tasks.start_task(redis, "history", since=since)
    assert await tasks.start_task(redis, "history", since=since, connection_id=2)
    assert not await tasks.start_task(redis, "history", since=since, connection_id=2)
    assert await tasks.cancel_task(redis, "history", connection_id=2)

    ones = [
        tasks.status_key("history", 1),
        tasks.cursor_key("history", 1),
        tasks.task_job_id("history", 1, 1),
    ]
    twos = [
        tasks.status_key("history", 2),
        tasks.cursor_key("history", 2),
        tasks.task_job_id("history", 1, 2),
    ]
    assert all(two == "c2:" + one for one, two in zip(ones, twos, strict=True))
    first = await Job(tasks.task_job_id("history", 1, 1), redis).info()
    second = await Job(tasks.task_job_id("history", 1, 2), redis).info()
    assert first is not None
    assert second is not None
    assert (first.function, first.kwargs) == (JOB_SETUP_TASK, {})
    assert (second.function, second.kwargs) == (JOB_SETUP_TASK, {"connection_id": 2})
    one, two = (
        await tasks.read_task(redis, "history"),
        await tasks.read_task(redis, "history", connection_id=2),
    )
    assert one is not None
    assert two is not None
    assert (one.state, two.state) == ("queued", "cancelling")
    assert one.run != two.run


async def test_two_connections_previews_run_side_by_side_each_on_its_own_shop(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as h:
        add_orders(h)
        shop = ShopSandbox(ping_on_create=False)
        for n in range(3):  # the second shop's three orders, with numbers the first shop uses too
            shop.add_order(order_document(5000 + n, paid=PAID + timedelta(hours=n)))
        settings = make_settings(
            database_url=h.settings.database_url,
            woocommerce_url=shop.url,
            woocommerce_consumer_key=shop.consumer_key,
            woocommerce_consumer_secret=shop.consumer_secret,
            moneybird_api_token=h.moneybird.token,
            moneybird_administration_id=h.moneybird.administration_id,
        )
        built = await build_services(
            settings,
            redis,
            shop_transport=httpx.ASGITransport(app=create_shop_app(shop)),
            moneybird_transport=sandbox_transport(h.moneybird),
        )
        second = for_connection(built, connection_id=2, contact_book_id=1)
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(2))
        try:
            assert await tasks.start_task(redis, "history-preview", since=SINCE.isoformat())
            assert await tasks.start_task(redis, "history-preview", since=SINCE.isoformat(), connection_id=2)
            while await h.queued():
                await h.run_worker(connections={2: second})
        finally:
            await built.aclose()

        one = await tasks.read_task(redis, "history-preview")
        two = await tasks.read_task(redis, "history-preview", connection_id=2)
        assert one is not None
        assert two is not None
        assert (one.state, two.state) == ("done", "done")
        assert (one.counts["would_book"], two.counts["would_book"]) == (ORDERS, 3)
        assert await redis.keys("*setup:task:history-preview:cursor") == []


async def test_a_slice_waits_while_another_slice_of_its_task_runs(redis: ArqRedis) -> None:
    assert await tasks.start_task(redis, "history-preview", since=SINCE.isoformat())
    other = redis.lock(tasks.slice_lock_key("history-preview", 1), timeout=30)
    assert await other.acquire(blocking=False)

    with pytest.raises(Retry):
        await task_jobs.setup_task_job({"redis": redis}, "history-preview", 1)
    status = await tasks.read_task(redis, "history-preview")

    assert status is not None
    assert status.state == "queued"  # untouched
    await other.release()


async def test_the_web_queues_the_backfill_and_a_burst_worker_books_it(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as h:
        documents = add_orders(h)
        monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(4))
        await h.web.post("/admin/login", data={"token": ADMIN_TOKEN})
        page = await h.web.get("/admin/setup/history")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf is not None

        started = await h.web.post(
            "/admin/setup/history", data={"csrf": csrf[1], "action": "backfill", "since": "2026-10-01"}
        )
        await asyncio.sleep(0.2)  # room for a background task of the web process, were there one
        waiting = await tasks.read_task(redis, "history")
        untouched = [await h.record(int(d["id"])) for d in documents]

        assert started.status_code == 303
        assert waiting is not None
        assert waiting.state == "queued"
        assert untouched == [None] * ORDERS  # the web process queued the task, and nothing else
        await drain(h)
        done = await tasks.read_task(redis, "history")
        assert done is not None
        assert (done.state, done.counts["booked"]) == ("done", ORDERS)
        assert [len(h.invoices_for(str(d["number"]))) for d in documents] == [1] * ORDERS
