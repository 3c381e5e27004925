"""What the public endpoints show: no schema, metrics only to their bearer, readiness without internals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from app.main import create_app
from app.metrics_refresh import CachedGauges
from app.settings import Settings
from tests.conftest import make_settings

METRICS_TOKEN = "test-metrics-x5TY8uLFLE1sjew2jnsHGbyKr44pqk0E"


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://woobird.test") as client,
    ):
        yield client


@pytest.fixture
async def guarded(sqlite_url: str, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(make_settings(database_url=sqlite_url, metrics_token=METRICS_TOKEN)):
        yield client


@pytest.fixture
async def open_metrics(sqlite_url: str, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(make_settings(database_url=sqlite_url)):
        yield client


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
async def test_no_schema_or_docs_pages_are_served(open_metrics: httpx.AsyncClient, path: str) -> None:
    assert (await open_metrics.get(path)).status_code == 404


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN[:-1]}"]
)
async def test_metrics_with_a_token_refuse_everyone_else(
    guarded: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = await guarded.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "woobird_" not in response.text


async def test_metrics_answer_their_bearer(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert "woobird_queue_depth" in response.text


async def test_metrics_without_a_token_are_public(open_metrics: httpx.AsyncClient) -> None:
    assert (await open_metrics.get("/metrics")).status_code == 200


class _CountingState:
    """A web process state whose Redis and ledger count how often the gauges read them."""

    def __init__(self) -> None:
        self.reads = 0
        self.redis = self

    async def zcard(self, _: str) -> int:
        self.reads += 1
        await asyncio.sleep(0.01)
        return 0

    def sessions(self) -> Any:
        raise RuntimeError("the ledger is down")  # its gauges keep their values; not the point here


async def test_scrapes_share_one_reading_of_the_gauges() -> None:
    state = _CountingState()
    gauges = CachedGauges(max_age=60)
    await asyncio.gather(*(gauges.refresh(state) for _ in range(20)))
    await gauges.refresh(state)
    assert state.reads == 1
    gauges.max_age = 0
    await gauges.refresh(state)
    assert state.reads == 2


async def test_readyz_names_what_failed_without_its_internals(sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, redis_url="redis://:hunter2pass@127.0.0.1:1/0")
    async for client in _client(settings):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "redis" in response.json()["failed"]
    assert response.json()["checks"]["redis"]["error"] == "Redis unreachable"
    for internal in ("127.0.0.1", "hunter2pass", "Error", "Connect", "refused"):
        assert internal not in response.text
