"""A job that keeps failing transiently stops after WORKER_MAX_TRIES and says so in its ledger."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from app.booking import ledger
from app.booking.orders import book_order_job
from app.booking.refunds import book_refund_job
from app.constants import WORKER_MAX_TRIES
from app.moneybird.errors import MoneybirdServerError
from app.schema import OrderState, RefundRecord, RefundState
from tests.harness import Harness
from tests.invoicing.reference_carts import order_document


def _jobs(kind: str) -> Counter[str]:
    """woobird_jobs_total of one job kind, by outcome."""
    return Counter(
        {
            outcome: REGISTRY.get_sample_value("woobird_jobs_total", {"kind": kind, "outcome": outcome}) or 0
            for outcome in ("booked", "failed", "retried", "gave_up")
        }
    )


def _last_try(harness: Harness) -> dict[str, object]:
    return {"services": harness.services, "job_try": WORKER_MAX_TRIES, "redis": harness.redis}


async def test_an_order_that_never_gets_through_fails_naming_the_tries(harness: Harness) -> None:
    document = order_document("a")
    order_id = int(harness.shop.add_order(document)["id"])
    await harness.deliver(order_id)
    harness.moneybird.fail_next("POST /sales_invoices", kind="status", status=503)
    before = _jobs("order")
    with pytest.raises(MoneybirdServerError):
        await book_order_job(_last_try(harness), order_id, "webhook")
    assert _jobs("order") - before == Counter(retried=1, gave_up=1)  # one job, one outcome: not failed too
    record = await harness.record(order_id)
    assert record is not None
    assert record.state == OrderState.FAILED
    assert record.failure_kind == "exhausted"
    assert record.error
    assert f"gave up after {WORKER_MAX_TRIES} tries" in record.error


async def test_a_refund_that_never_gets_through_fails_and_its_order_stays_booked(harness: Harness) -> None:
    document = order_document("a")
    order_id = int(harness.shop.add_order(document)["id"])
    await harness.deliver(order_id)
    await harness.run_worker()
    refund = harness.shop.add_refund(order_id, amount=Decimal("5.00"), reason="goodwill")
    await harness.deliver(order_id)
    await harness.run_worker(max_jobs=1)  # the order job notices the refund and queues it
    harness.moneybird.fail_next("POST /sales_invoices", kind="status", status=503)
    before = _jobs("refund")
    with pytest.raises(MoneybirdServerError):
        await book_refund_job(_last_try(harness), order_id, int(refund["id"]), "webhook")
    assert _jobs("refund") - before == Counter(retried=1, gave_up=1)
    async with harness.sessions() as session:
        credit = await session.get(RefundRecord, int(refund["id"]))
    assert credit is not None
    assert credit.state == RefundState.FAILED
    assert credit.error
    assert f"gave up after {WORKER_MAX_TRIES} tries" in credit.error
    order = await harness.record(order_id)
    assert order is not None
    assert order.state == OrderState.BOOKED
    async with harness.sessions() as session:  # the order's page says what became of its refund
        events = await ledger.events_for(session, order_id)
    assert [e.message for e in events if e.step == "failed"] == [credit.error]
