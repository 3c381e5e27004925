"""Fixtures for the Moneybird client: a dedicated Redis database and clients over respx routers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.moneybird.client import MoneybirdClient
from app.moneybird.ratelimit import RateLimiter
from tests.services import redis_database

# Its own database: the limiter tests measure timing and must not share keys with other suites.
MONEYBIRD_TEST_REDIS_URL = os.environ.get("MONEYBIRD_TEST_REDIS_URL", redis_database(12))
BASE_URL = "https://moneybird.test/api/v2"
ADMINISTRATION_ID = "123456789012345678"
TOKEN = "mb-secret-token-c0ffee"


@pytest.fixture
async def mb_redis() -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(MONEYBIRD_TEST_REDIS_URL)
    try:
        await client.ping()
    except Exception:
        pytest.fail(f"Redis is not reachable at {MONEYBIRD_TEST_REDIS_URL}: start redis-server")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def router() -> respx.Router:
    # assert_all_called off: tests register fallbacks they may not need.
    return respx.Router(base_url=f"{BASE_URL}/{ADMINISTRATION_ID}", assert_all_called=False)


@pytest.fixture
async def make_client(router: respx.Router) -> AsyncIterator[Callable[..., MoneybirdClient]]:
    clients: list[MoneybirdClient] = []

    def make(*, limiter: RateLimiter | None = None, **kwargs: Any) -> MoneybirdClient:
        kwargs.setdefault("blip_wait", (0.0, 0.0))
        client = MoneybirdClient(
            base_url=BASE_URL,
            token=TOKEN,
            administration_id=ADMINISTRATION_ID,
            limiter=limiter,
            transport=kwargs.pop("transport", httpx.MockTransport(router.async_handler)),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: Callable[..., MoneybirdClient]) -> MoneybirdClient:
    return make_client()
