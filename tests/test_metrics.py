"""/metrics after real deliveries and bookings: deliveries and jobs by outcome, booking durations,
Moneybird calls and 429s, queue depth."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app import schema
from app.booking import ledger
from app.db import transaction
from app.main import create_app
from app.metrics_refresh import record_moneybird_response, refresh_gauges
from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import MoneybirdRateLimited
from app.settings import Settings
from tests.conftest import WEBHOOK_SECRET
from tests.factories import order_document, signed_headers, wc_body
from tests.harness import Harness
from tests.invoicing.reference_carts import order_document as reference_order


@pytest.fixture
async def app(settings: Settings, redis: ArqRedis) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def web(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://woobird.test"
    ) as client:
        yield client


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _deliver(web: httpx.AsyncClient, order_id: int, *, secret: str = WEBHOOK_SECRET) -> int:
    body = wc_body(order_document(order_id))
    response = await web.post(
        "/webhooks/woocommerce", content=body, headers=signed_headers(body, secret=secret)
    )
    return response.status_code


async def test_deliveries_by_outcome_and_queue_depth(web: httpx.AsyncClient, app: FastAPI) -> None:
    outcomes = ("queued", "duplicate", "unauthorized", "ping")
    before = {
        outcome: _value("woobird_webhook_deliveries_total", outcome=outcome, connection="1")
        for outcome in outcomes
    }

    assert [await _deliver(web, 501), await _deliver(web, 502)] == [202, 202]
    assert await _deliver(web, 501) == 200  # the same version again
    assert await _deliver(web, 503, secret="not-the-secret") == 401
    ping = await web.post("/webhooks/woocommerce", content=b"webhook_id=7")
    assert ping.status_code == 200
    await refresh_gauges(app.state.woobird)

    text = (await web.get("/metrics")).text
    deltas = {
        o: _value("woobird_webhook_deliveries_total", outcome=o, connection="1") - before[o] for o in outcomes
    }
    assert deltas == {"queued": 2, "duplicate": 1, "unauthorized": 1, "ping": 1}
    assert 'woobird_webhook_deliveries_total{connection="1",outcome="queued"}' in text
    assert "woobird_queue_depth 2.0" in text
    assert 'woobird_orders{state="queued"} 2.0' in text
    assert 'woobird_orders{state="booked"} 0.0' in text
    for family in (
        "woobird_jobs_total",
        "woobird_moneybird_requests_total",
        "woobird_moneybird_429_total",
        "woobird_last_reconcile_success_timestamp",
        "woobird_order_booking_seconds",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text


async def test_last_reconcile_gauge(app: FastAPI) -> None:
    state = app.state.woobird
    moment = schema.utcnow().replace(microsecond=0)
    async with transaction(state.sessions) as session:
        await ledger.set_state(session, ledger.RECONCILE_LAST_SUCCESS, moment.isoformat())
    await refresh_gauges(state)
    assert _value("woobird_last_reconcile_success_timestamp") == moment.timestamp()


async def test_gauges_survive_a_redis_outage(app: FastAPI) -> None:
    state = app.state.woobird
    await state.redis.connection_pool.disconnect()
    state.redis.connection_pool.connection_kwargs["port"] = 1
    await refresh_gauges(state)  # logs, does not raise: /metrics must still answer
    assert b"woobird_queue_depth" in generate_latest()


def _moneybird(handler: Any) -> MoneybirdClient:
    return MoneybirdClient(
        base_url="https://moneybird.test/api/v2",
        token="mb-test-token",
        administration_id="123",
        transport=httpx.MockTransport(handler),
        on_response=record_moneybird_response,
        short_rate_limit_wait=0,
    )


async def test_moneybird_calls_and_429s_are_counted() -> None:
    calls_ok = _value("woobird_moneybird_requests_total", method="GET", status="200")
    calls_429 = _value("woobird_moneybird_requests_total", method="GET", status="429")
    throttled = _value("woobird_moneybird_429_total")
    answers = iter(
        [
            httpx.Response(200, json=[]),
            httpx.Response(429, headers={"Retry-After": str(int(time.time()) + 600)}, text="Retry later"),
        ]
    )

    async with _moneybird(lambda request: next(answers)) as client:
        assert await client.tax_rates() == []
        with pytest.raises(MoneybirdRateLimited):
            await client.tax_rates()

    assert _value("woobird_moneybird_requests_total", method="GET", status="200") - calls_ok == 1
    assert _value("woobird_moneybird_requests_total", method="GET", status="429") - calls_429 == 1
    assert _value("woobird_moneybird_429_total") - throttled == 1
    assert b"woobird_moneybird_request_seconds_count" in generate_latest()


def _scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _delta(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_jobs_by_outcome_and_booking_durations_after_real_bookings(harness: Harness) -> None:
    before = _scrape((await harness.web.get("/metrics")).text)
    booked = int(harness.shop.add_order(reference_order("a"))["id"])
    retried = int(harness.shop.add_order(reference_order("b"))["id"])
    refused_document = reference_order("c")
    refused_document["tax_lines"][0]["rate_percent"] = 17  # no Moneybird rate: refused
    refused = int(harness.shop.add_order(refused_document)["id"])
    nonsense = int(harness.shop.add_order(reference_order("e"))["id"])
    for order_id in (booked, refused, nonsense):
        await harness.deliver(order_id)
    harness.shop.orders[nonsense]["line_items"][0]["quantity"] = 10**30  # the shop serves nonsense
    await harness.run_worker()
    harness.moneybird.fail_next("POST /sales_invoices", kind="status", status=503)
    await harness.deliver(retried)
    await harness.run_worker()
    harness.shop.add_refund(booked, amount="2.50")
    await harness.deliver(booked)
    await harness.run_worker()

    after = _scrape((await harness.web.get("/metrics")).text)
    jobs = "woobird_jobs_total"
    assert _delta(before, after, jobs, kind="order", outcome="booked", connection="1") == 2
    assert _delta(before, after, jobs, kind="order", outcome="failed", connection="1") == 2
    assert _delta(before, after, jobs, kind="order", outcome="retried", connection="1") == 1
    assert _delta(before, after, jobs, kind="refund", outcome="booked", connection="1") == 1
    durations = "woobird_order_booking_seconds"
    assert _delta(before, after, f"{durations}_count") == 2
    assert _delta(before, after, f"{durations}_sum") > 0
    assert _delta(before, after, f"{durations}_bucket", le="+Inf") == 2
