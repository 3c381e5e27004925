"""The alerts a person gets from the real flows: each cause the README lists, once, with its ids.

The harness books through the real web app, worker, ledger and Redis; only the alert channel (a
Slack-style incoming webhook) is a respx route, so every alert the flows send is seen here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from sqlalchemy import update

from app.booking.orders import book_order_job
from app.booking.reconcile import reconcile
from app.constants import WORKER_MAX_TRIES
from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import MoneybirdServerError
from app.schema import OrderState, RefundRecord, RefundState
from tests.harness import Harness, open_harness
from tests.invoicing.reference_carts import order_document

HOOK = "https://hooks.slack.test/services/T000/B000/woobird"


@pytest.fixture
def alerts() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))


@pytest.fixture
async def h(database_url: str, redis: ArqRedis, alerts: respx.Route) -> AsyncIterator[Harness]:
    async with open_harness(
        database_url=database_url,
        redis=redis,
        alert_webhook_url=HOOK,
        public_url="https://woobird.example",
    ) as harness:
        yield harness


def _texts(route: respx.Route) -> list[str]:
    return [json.loads(call.request.content)["text"] for call in route.calls]


async def _deliver_and_work(h: Harness, order_id: int) -> None:
    assert (await h.deliver(order_id)).is_success
    await h.run_worker()


async def _booked(h: Harness, case: str) -> int:
    order_id = int(h.shop.add_order(order_document(case))["id"])
    await _deliver_and_work(h, order_id)
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    return order_id


async def test_an_order_refused_for_good_is_alerted_once_with_its_reason(
    h: Harness, alerts: respx.Route
) -> None:
    document = order_document("a")
    document["tax_lines"][0]["rate_percent"] = 17  # no Moneybird rate of 17 %
    order_id = int(h.shop.add_order(document)["id"])
    await _deliver_and_work(h, order_id)
    h.shop.update_order(order_id, customer_note="bel even")  # delivered again: still one alert
    await _deliver_and_work(h, order_id)
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.FAILED
    (text,) = _texts(alerts)
    assert f"order {order_id} could not be booked" in text
    assert "(refused)" in text
    assert "17" in text


async def test_an_order_that_ran_out_of_tries_is_alerted(h: Harness, alerts: respx.Route) -> None:
    order_id = int(h.shop.add_order(order_document("b"))["id"])
    assert (await h.deliver(order_id)).status_code == 202
    h.moneybird.fail_next("POST /sales_invoices", kind="status", status=503)
    last_try = {"services": h.services, "job_try": WORKER_MAX_TRIES, "redis": h.redis}
    with pytest.raises(MoneybirdServerError):
        await book_order_job(last_try, order_id, "webhook")
    (text,) = _texts(alerts)
    assert f"order {order_id} could not be booked" in text
    assert f"gave up after {WORKER_MAX_TRIES} tries" in text


async def test_a_booked_order_and_a_passing_failure_alert_nobody(h: Harness, alerts: respx.Route) -> None:
    order_id = int(h.shop.add_order(order_document("c"))["id"])
    h.moneybird.fail_next("POST /sales_invoices", kind="status", status=503)  # retried, then booked
    await _deliver_and_work(h, order_id)
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED
    assert _texts(alerts) == []


async def test_a_webhook_the_shop_disabled_is_switched_back_on_and_alerted(
    h: Harness, alerts: respx.Route
) -> None:
    hook = h.shop.add_webhook(delivery_url="https://woobird.example/webhooks/woocommerce")
    h.shop.disable_webhook(hook["id"])
    await reconcile(h.services)
    await reconcile(h.services)  # active again: nothing more to say
    assert h.shop.webhooks[hook["id"]]["status"] == "active"
    (text,) = _texts(alerts)
    assert f"webhook {hook['id']}" in text
    assert "re-activated" in text


async def test_a_webhook_that_cannot_be_switched_back_on_is_alerted(h: Harness, alerts: respx.Route) -> None:
    hook = h.shop.add_webhook(delivery_url="https://woobird.example/webhooks/woocommerce")
    h.shop.disable_webhook(hook["id"])
    h.shop.fail_next(f"PUT /webhooks/{hook['id']}", status=403)
    report = await reconcile(h.services)
    assert report.webhook is not None
    assert report.webhook.problem
    (text,) = _texts(alerts)
    assert f"webhook {hook['id']} is disabled and could not be re-activated" in text


async def test_a_refund_deleted_after_crediting_is_alerted(h: Harness, alerts: respx.Route) -> None:
    order_id = await _booked(h, "b")
    refund = h.shop.add_refund(order_id, amount="5.00")
    await _deliver_and_work(h, order_id)
    h.shop.delete_refund(order_id, refund["id"])
    await _deliver_and_work(h, order_id)
    await _deliver_and_work(h, order_id)
    record = await _refund(h, refund["id"])
    assert record.state == RefundState.DELETED
    (text,) = _texts(alerts)
    assert f"refund {refund['id']} of order {order_id} was deleted in WooCommerce after woobird" in text
    assert str(record.credit_invoice_number) in text


async def test_a_refund_deleted_before_crediting_alerts_nobody(h: Harness, alerts: respx.Route) -> None:
    order_id = await _booked(h, "b")
    refund = h.shop.add_refund(order_id, amount="5.00")
    assert (await h.deliver(order_id)).is_success
    await h.run_worker(max_jobs=1)  # the order's job records the refund and queues its job, no more
    assert (await _refund(h, refund["id"])).state == RefundState.QUEUED
    h.shop.delete_refund(order_id, refund["id"])
    await _deliver_and_work(h, order_id)
    record = await _refund(h, refund["id"])
    assert (record.state, record.credit_invoice_id) == (RefundState.DELETED, None)
    assert _texts(alerts) == []


async def test_a_refund_that_cannot_be_credited_exactly_is_alerted(h: Harness, alerts: respx.Route) -> None:
    order_id = await _booked(h, "b")
    teapot = h.shop.orders[order_id]["line_items"][0]
    # Less money back than the line it names: no exact credit exists.
    refund = h.shop.add_refund(order_id, amount="1.00", line_items={teapot["id"]: 1})
    await _deliver_and_work(h, order_id)
    record = await _refund(h, refund["id"])
    assert record.state == RefundState.FAILED
    (text,) = _texts(alerts)
    assert f"refund {refund['id']} of order {order_id} could not be credited" in text
    assert Decimal("1.00") == record.amount


async def _refund(h: Harness, refund_id: int) -> Any:
    async with h.sessions() as session:
        record = await session.get(RefundRecord, refund_id)
    assert record is not None
    return record


async def test_a_refund_deleted_in_the_shop_while_it_was_being_credited_is_alerted(
    h: Harness, alerts: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = await _booked(h, "b")
    refund = h.shop.add_refund(order_id, amount="5.00")
    pay = MoneybirdClient.create_sales_invoice_payment

    async def shop_deletes_it_meanwhile(self: MoneybirdClient, invoice_id: str, payment: Any) -> Any:
        # The shop's delivery of the deletion lands between the credit's creation and its booking.
        async with h.sessions() as session, session.begin():
            await session.execute(
                update(RefundRecord)
                .where(RefundRecord.refund_id == refund["id"])
                .values(state=RefundState.DELETED.value)
            )
        return await pay(self, invoice_id, payment)

    monkeypatch.setattr(MoneybirdClient, "create_sales_invoice_payment", shop_deletes_it_meanwhile)
    await _deliver_and_work(h, order_id)
    record = await _refund(h, refund["id"])
    assert record.state == RefundState.DELETED
    assert record.credit_invoice_id is not None  # credited: the bookkeeper must reverse it by hand
    (text,) = _texts(alerts)
    assert f"refund {refund['id']} of order #" in text
    assert "was deleted in WooCommerce while woobird credited it" in text
    assert str(record.credit_invoice_number) in text
