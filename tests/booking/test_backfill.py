"""The history import: dry runs book nothing, interrupted runs resume without duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis

from app import schema
from app.booking import ledger
from app.booking.backfill import BackfillProgress, backfill, eta
from app.db import transaction
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.schema import OrderState
from tests.booking._wiring import wired
from tests.harness import open_harness

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
PAID = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)


class Stop(Exception):
    pass


async def test_dry_run_plans_and_books_nothing(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        for number in range(3):
            w.add_order(4000 + number, paid=PAID + timedelta(hours=number))
        w.add_order(4010, paid=SINCE - timedelta(days=1))  # paid before the range
        report = await backfill(w.services, since=SINCE, dry_run=True)
        assert report.progress.queued == 3
        assert report.planned_total == sum(total for _, _, total in report.would_book)
        assert [order_id for order_id, _, _ in report.would_book] == [4000, 4001, 4002]
        assert report.not_in_range == 1
        assert all([await w.record(4000 + n) is None for n in range(3)])
        assert await w.job_ids() == set()
        assert w.moneybird.calls("POST *") == 0


async def test_a_refused_plan_is_reported_with_its_reason(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        document = w.add_order(4020, paid=PAID)
        document["tax_lines"][0]["rate_percent"] = 17  # no Moneybird rate of 17 %
        report = await backfill(w.services, since=SINCE, dry_run=True)
        assert report.progress.refused == 1
        assert "#4020" in report.refusals[0].reason


async def test_interrupted_backfill_resumes_without_duplicates(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, sync_since="2026-11-20T00:00:00Z") as w:
        for number in range(5):
            w.add_order(4100 + number, paid=PAID + timedelta(minutes=number))

        def stop_after_two(progress: BackfillProgress) -> None:
            if progress.queued == 2:
                raise Stop

        with pytest.raises(Stop):
            await backfill(w.services, since=SINCE, progress=stop_after_two, max_outstanding=0)
        assert len(await w.job_ids()) == 2
        async with transaction(w.services.sessions) as session:  # the worker booked one meanwhile
            await ledger.update_order(session, 4100, state=OrderState.BOOKED.value)

        resumed = await backfill(w.services, since=SINCE, max_outstanding=0)
        assert resumed.progress.skipped == 1
        assert len(await w.job_ids()) == 5
        for number in range(1, 5):
            record = await w.record(4100 + number)
            assert record is not None
            assert record.backfilled
            assert record.state == OrderState.QUEUED
        again = await backfill(w.services, since=SINCE, max_outstanding=0)
        assert len(await w.job_ids()) == 5  # arq kept one job per order version
        assert again.progress.skipped == 1


async def test_an_order_marked_before_since_is_let_through(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        w.add_order(4200, paid=PAID)
        async with transaction(w.services.sessions) as session:
            await ledger.mark_before_since(
                session, order_id=4200, order_number="4200", date_modified=w.shop.now(), date_paid=PAID
            )
        await backfill(w.services, since=SINCE, max_outstanding=0)
        record = await w.record(4200)
        assert record is not None
        assert record.backfilled
        assert record.state == OrderState.QUEUED


async def test_pacing_waits_for_the_worker(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        for number in range(3):
            w.add_order(4300 + number, paid=PAID)
        seen: list[int] = []

        def fake_worker(progress: BackfillProgress) -> None:
            seen.append(progress.waiting)

        async def book_all_waiting() -> None:
            async with transaction(w.services.sessions) as session:
                for number in range(3):
                    record = await ledger.get_order(session, 4300 + number)
                    if record is not None and record.state == OrderState.QUEUED:
                        await ledger.update_order(session, 4300 + number, state=OrderState.BOOKED.value)

        import asyncio

        async def worker_loop() -> None:
            for _ in range(50):
                await asyncio.sleep(0.2)
                await book_all_waiting()

        task = asyncio.create_task(worker_loop())
        report = await backfill(w.services, since=SINCE, max_outstanding=1, wait=True, progress=fake_worker)
        task.cancel()
        assert report.progress.booked == 3
        assert report.progress.waiting == 0
        assert max(seen) <= 2  # never more than the bound (+ the one just queued) outstanding


def test_eta_follows_the_rate_limit() -> None:
    assert eta(10_000, (150, 300)) == pytest.approx(10_000 * 4 * 300 / 150)
    assert eta(10_000, (150, 300), calls_each=3.6) == pytest.approx(10_000 * 3.6 * 300 / 150)


@pytest.mark.parametrize(
    ("kind", "calls"), [("sales_invoice", 4 + 3 + 3), ("external_sales_invoice", 3 + 2 + 2)]
)
async def test_the_preview_counts_what_the_import_costs_new_and_returning_customers(
    database_url: str, redis: ArqRedis, kind: str, calls: int
) -> None:
    async with wired(database_url=database_url, redis=redis, invoice_kind=kind) as w:
        async with transaction(w.services.sessions) as session:
            session.add(
                schema.ContactRecord(
                    email="bekend@example.nl", contact_id="1", adopted=False, created_at=schema.utcnow()
                )
            )
        w.add_order(4030, paid=PAID, email="Nieuw@example.nl")
        w.add_order(4031, paid=PAID + timedelta(hours=1), email="nieuw@example.nl")
        w.add_order(4032, paid=PAID + timedelta(hours=2), email="bekend@example.nl")
        report = await backfill(w.services, since=SINCE, dry_run=True)
        assert report.progress.new_customers == 1
        assert report.progress.calls == calls
        # requests × the limit's seconds per request: 150 per 300 s
        assert report.import_seconds((150, 300)) == pytest.approx(calls * 2)
        assert report.progress.eta_seconds == pytest.approx(calls * 300 / 150)
        estimate = report.import_estimate((150, 300))
        assert f"{calls} requests for 3 orders, 1 of them by new customers" in estimate


async def test_orders_paid_before_sync_since_are_booked_by_the_backfill(
    database_url: str, redis: ArqRedis
) -> None:
    async with open_harness(database_url=database_url, redis=redis, sync_since="2026-11-01T00:00:00Z") as h:
        old = [h.add_paid_order(**_cart(4400 + n, paid=PAID + timedelta(days=n))) for n in range(2)]
        recent = h.add_paid_order(**_cart(4410, paid=datetime(2026, 11, 5, 9, 0, tzinfo=UTC)))
        for document in [*old, recent]:
            assert (await h.deliver(int(document["id"]))).is_success
        await h.run_worker()
        for document in old:
            record = await h.record(int(document["id"]))
            assert record is not None
            assert record.state == OrderState.BEFORE_SINCE
        assert [len(h.invoices_for(str(d["number"]))) for d in old] == [0, 0]

        report = await backfill(h.services, since=SINCE, until=datetime(2026, 11, 1, tzinfo=UTC))
        assert sorted(report.queued_ids) == [4400, 4401]
        await h.run_worker()
        for document in [*old, recent]:
            record = await h.record(int(document["id"]))
            assert record is not None
            assert record.state == OrderState.BOOKED, record.error
            (invoice,) = h.invoices_for(str(document["number"]))
            assert invoice["state"] == "paid"
            assert Decimal(invoice["total_price_incl_tax"]) == Decimal(document["total"])


def _cart(order_id: int, *, paid: datetime) -> dict[str, Any]:
    customer = Customer(first_name="Mila", last_name="de Boer", email="mila@example.nl", city="Zwolle")
    item = CartItem(name="Kaars", price=Decimal("8.95"), quantity=3, sku="KAARS-1")
    return {
        "order_id": order_id,
        "customer": customer,
        "items": [item],
        "created_at": paid,
        "paid_at": paid,
        "completed_at": paid,
    }
