"""Each webhook delivery's lag (its arrival − the order's date_modified_gmt): measured at the real
endpoint, kept in Redis, shown on /metrics, the dashboard, `woobird status` and `woobird check` —
and a shop's odd clock or dates never make it negative, unbounded or a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
import pytest
import redis as sync_redis
from arq.connections import ArqRedis
from fastapi import FastAPI
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from app.constants import DELIVERY_LAG_KEY
from app.delivery_lag import (
    MAX_LAG_SECONDS,
    MIN_DELIVERIES,
    RECENT_DELIVERIES,
    RECENT_WINDOW_SECONDS,
    SLOW_MEDIAN_SECONDS,
    DeliveryLags,
    lag_seconds,
    recent_lags,
)
from app.settings import REPO_ROOT, Settings
from tests.admin.conftest import app_with_admin, sign_in
from tests.conftest import WEBHOOK_SECRET
from tests.factories import order_document, signed_headers, wc_body
from tests.test_cli import Fakes, fakes, queue_redis  # noqa: F401  (the fixtures)

LAG_METRIC = "woobird_webhook_delivery_lag_seconds"


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return app_with_admin(settings)


@pytest.fixture
async def web(app: FastAPI, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            yield client


def _gmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


async def _deliver(web: httpx.AsyncClient, order_id: int, *, modified: str, status: str = "completed") -> int:
    document = order_document(order_id, status=status)
    document["date_modified_gmt"] = modified
    body = wc_body(document)
    response = await web.post(
        "/webhooks/woocommerce", content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET)
    )
    return response.status_code


async def _sent(app: FastAPI) -> None:
    """What the web process measured, sent to Redis now rather than after FLUSH_SECONDS."""
    await app.state.woobird.lags.flush()


# redis-py types these commands for both of its clients; ArqRedis is the asyncio one.
async def _lpush(redis: ArqRedis, *entries: str) -> None:
    await cast(Awaitable[int], redis.lpush(DELIVERY_LAG_KEY, *entries))


async def _rpush(redis: ArqRedis, *entries: str) -> None:
    await cast(Awaitable[int], redis.rpush(DELIVERY_LAG_KEY, *entries))


async def _llen(redis: ArqRedis) -> int:
    return await cast(Awaitable[int], redis.llen(DELIVERY_LAG_KEY))


def _observed(name: str = "_count", **labels: str) -> float:
    """connection 1's histogram (the environment's webhook URL)."""
    return REGISTRY.get_sample_value(LAG_METRIC + name, {"connection": "1", **labels}) or 0.0


def test_the_lag_is_never_negative_and_at_most_a_day() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    received = now.timestamp()
    assert lag_seconds(now - timedelta(seconds=42.5), received=received) == 42.5
    assert lag_seconds(now + timedelta(minutes=3), received=received) == 0.0  # the shop's clock runs ahead
    assert lag_seconds(now - timedelta(days=40), received=received) == MAX_LAG_SECONDS
    assert lag_seconds(datetime(1, 1, 1, tzinfo=UTC), received=received) == MAX_LAG_SECONDS
    assert lag_seconds((now - timedelta(seconds=5)).replace(tzinfo=None), received=received) == 5.0


async def test_a_delivery_records_its_lag_in_the_histogram_and_for_the_median(
    app: FastAPI, web: httpx.AsyncClient, redis: ArqRedis
) -> None:
    count, total = _observed(), _observed("_sum")
    within_two_minutes = _observed("_bucket", le="120.0")
    modified = datetime.now(UTC) - timedelta(seconds=90)

    assert await _deliver(web, 6101, modified=_gmt(modified)) == 202
    # Unpaid orders are not booked, but their deliveries show how promptly the shop sends them too.
    assert await _deliver(web, 6102, modified=_gmt(modified), status="pending") == 200

    assert _observed() == count + 2
    assert 180 <= _observed("_sum") - total <= 190
    assert _observed("_bucket", le="120.0") == within_two_minutes + 2
    assert "woobird_webhook_delivery_lag_seconds_bucket" in (await web.get("/metrics")).text
    await _sent(app)
    lags = await recent_lags(redis)
    assert lags.deliveries == 2
    assert lags.median is not None
    assert 90 <= lags.median <= 95


@pytest.mark.parametrize(
    ("modified", "lag"),
    [
        ("9999-12-31T23:59:59", 0.0),  # far ahead: counted as no lag, never negative
        ("0001-01-01T00:00:00", MAX_LAG_SECONDS),  # long ago: at most a day, not millennia
        ("1970-01-01T00:00:00", MAX_LAG_SECONDS),
    ],
)
async def test_dates_a_clock_cannot_mean_are_answered_and_bounded(
    app: FastAPI, web: httpx.AsyncClient, redis: ArqRedis, modified: str, lag: float
) -> None:
    assert await _deliver(web, 6110, modified=modified) in (200, 202)
    await _sent(app)
    lags = await recent_lags(redis)
    assert lags.lags == (lag,)


async def test_the_median_of_recent_deliveries_is_slow_only_with_enough_of_them(redis: ArqRedis) -> None:
    now = time.time()
    for index in range(MIN_DELIVERIES - 1):
        await _lpush(redis, f"{now - index:.3f} 95.000")
    assert not (await recent_lags(redis)).slow  # four slow deliveries are not yet a pattern
    await _lpush(redis, f"{now:.3f} 70.000")
    slow = await recent_lags(redis)
    assert slow.slow
    assert slow.describe() == f"median 95 s, slowest 95 s over the last {MIN_DELIVERIES} deliveries"
    for _ in range(MIN_DELIVERIES):
        await _lpush(redis, f"{now:.3f} 1.500")
    assert not (await recent_lags(redis)).slow  # the owner added a system cron: the median follows


async def test_old_deliveries_and_malformed_entries_are_not_counted(redis: ArqRedis) -> None:
    now = time.time()
    eight_days_ago = now - 8 * 24 * 3600
    await _rpush(
        redis,
        f"{now:.3f} 2.000",
        "garbage",
        f"{now:.3f} -5.000",
        f"{now:.3f} nan",
        f"{now:.3f} 1e12",
        f"{eight_days_ago:.3f} 300.000",
    )
    assert (await recent_lags(redis, now=now)).lags == (2.0,)


async def test_only_the_recent_deliveries_are_kept(
    app: FastAPI, web: httpx.AsyncClient, redis: ArqRedis
) -> None:
    modified = _gmt(datetime.now(UTC) - timedelta(seconds=3))
    for order_id in range(6200, 6200 + RECENT_DELIVERIES + 5):
        await _deliver(web, order_id, modified=modified)
        if order_id == 6210:
            await _sent(app)
    await _sent(app)
    assert await _llen(redis) == RECENT_DELIVERIES


async def test_a_process_sends_its_lags_together_on_its_own_and_when_it_stops(redis: ArqRedis) -> None:
    now = time.time()
    lags = DeliveryLags(redis, flush_seconds=0.2)
    for seconds in (4, 3, 2):
        lags.record(7000 + seconds, datetime.fromtimestamp(now - seconds, UTC), received=now)
    assert await _llen(redis) == 0  # gathered, not yet sent: no round trip each
    await asyncio.sleep(0.6)
    assert (await recent_lags(redis, now=now)).lags == (2.0, 3.0, 4.0)  # newest first

    lags.record(7001, datetime.fromtimestamp(now, UTC), received=now + 1)
    await lags.aclose()  # a web process that stops sends what it still holds
    assert (await recent_lags(redis, now=now)).lags == (1.0, 2.0, 3.0, 4.0)


async def test_the_dashboard_shows_the_lag_and_warns_when_the_median_is_high(
    web: httpx.AsyncClient, settings: Settings, redis: ArqRedis
) -> None:
    await sign_in(web, settings)
    now = time.time()
    for _ in range(MIN_DELIVERIES):
        await _lpush(redis, f"{now:.3f} 2.000")
    prompt = (await web.get("/admin")).text
    assert 'data-lag="ok"' in prompt
    assert "2.0 s" in prompt
    assert "arrive late" not in prompt

    for _ in range(MIN_DELIVERIES + 1):
        await _lpush(redis, f"{now:.3f} 150.000")
    late = (await web.get("/admin")).text
    assert 'data-lag="slow"' in late
    assert "webhooks arrive late (median 150 s" in late
    assert "system cron" in late
    summary = (await web.get("/admin", headers={"accept": "application/json"})).json()["delivery_lag"]
    assert (summary["deliveries"], summary["median_seconds"], summary["slow"]) == (11, 150.0, True)


def test_status_and_check_show_the_lag_and_check_warns_when_it_is_high(
    fakes: Fakes,  # noqa: F811
    queue_redis: sync_redis.Redis,  # noqa: F811
) -> None:
    fakes.install_webhook()
    now = time.time()
    for _ in range(MIN_DELIVERIES):
        queue_redis.lpush(DELIVERY_LAG_KEY, f"{now:.3f} 0.800")

    status = fakes.invoke("status")
    check = fakes.invoke("check")
    assert "Webhook delivery lag: median 0.8 s, slowest 0.8 s over the last 5 deliveries" in status.output
    assert "✓ webhook delivery: median 0.8 s" in check.output
    assert check.exit_code == 0, check.output

    for _ in range(MIN_DELIVERIES + 1):
        queue_redis.lpush(DELIVERY_LAG_KEY, f"{now:.3f} 720.000")
    status = fakes.invoke("status")
    check = fakes.invoke("check")
    assert "Webhooks arrive late: the shop sends webhooks from WP-Cron" in status.output
    assert "! webhook delivery: the shop's webhooks arrive late (median 12 min" in check.output
    assert "system cron" in check.output
    assert check.exit_code == 0, check.output  # a warning: every order is still booked, only later


async def test_a_lag_that_cannot_be_kept_does_not_fail_the_delivery(
    app: FastAPI, web: httpx.AsyncClient, redis: ArqRedis
) -> None:
    await redis.set(DELIVERY_LAG_KEY, "not a list")  # Redis refuses LPUSH on it (WRONGTYPE)
    modified = _gmt(datetime.now(UTC) - timedelta(seconds=3))
    with capture_logs() as logs:
        assert await _deliver(web, 6301, modified=modified) == 202
        await _sent(app)
    assert await redis.zcard("arq:queue") == 1  # recorded and queued all the same
    # Said, for the order and with the error's kind only (a Redis error's text may name keys).
    assert [entry for entry in logs if entry["event"] == "delivery lag not recorded"] == [
        {
            "event": "delivery lag not recorded",
            "log_level": "warning",
            "order_ids": [6301],
            "error": "ResponseError",
        }
    ]


def test_the_readme_states_the_thresholds_woobird_uses() -> None:
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (
        f"the last {RECENT_DELIVERIES} of the past {RECENT_WINDOW_SECONDS // 86400} days, "
        f"at least {MIN_DELIVERIES} of them) is over {SLOW_MEDIAN_SECONDS:.0f} s"
    ) in readme
    assert MAX_LAG_SECONDS == 86400  # "a date more than a day old counts as a day"
    assert "a date more than a day old counts as a day" in readme


def test_check_tells_lags_it_cannot_read_from_redis_that_does_not_answer(
    fakes: Fakes,  # noqa: F811
    queue_redis: sync_redis.Redis,  # noqa: F811
) -> None:
    fakes.install_webhook()
    queue_redis.set(DELIVERY_LAG_KEY, "not a list")

    check = fakes.invoke("check")

    assert "✓ Redis: answers" in check.output
    assert "! webhook delivery: the recent deliveries' lags could not be read (ResponseError)" in check.output
    assert check.exit_code == 0, check.output
