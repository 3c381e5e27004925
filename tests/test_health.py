"""/healthz for the platform, /readyz for the uptime monitor: each failure is named."""

from __future__ import annotations

from datetime import timedelta

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.booking import ledger
from app.constants import WORKER_HEALTH_KEY
from app.db import transaction
from app.main import create_app
from tests.conftest import make_settings


async def _all_fresh(redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]) -> None:
    await redis.set(WORKER_HEALTH_KEY, "j_complete=1", ex=30)
    async with transaction(sessions) as session:
        await ledger.set_state(session, ledger.RECONCILE_LAST_SUCCESS, schema.utcnow().isoformat())


async def test_healthz_answers_without_dependencies(web: httpx.AsyncClient) -> None:
    response = await web.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_when_every_part_is(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _all_fresh(redis, sessions)
    response = await web.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["failed"] == []
    assert set(body["checks"]) == {"redis", "worker", "database", "backlog", "reconcile", "connections"}


async def test_readyz_names_a_missing_worker_heartbeat(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _all_fresh(redis, sessions)
    await redis.delete(WORKER_HEALTH_KEY)
    response = await web.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]
    assert "worker" in response.json()["checks"]["worker"]["error"]


async def test_readyz_fails_on_a_backlog(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _all_fresh(redis, sessions)
    old = schema.utcnow() - timedelta(minutes=40)
    async with transaction(sessions) as session:
        await ledger.record_delivery(
            session, order_id=77, order_number="77", date_modified=old, date_paid=old
        )
        await ledger.update_order(session, 77, updated_at=old)
    response = await web.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["backlog"]
    assert response.json()["checks"]["backlog"]["orders_waiting_over_15_min"] == 1


async def test_readyz_fails_when_reconciliation_is_stale(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _all_fresh(redis, sessions)
    stale = schema.utcnow() - timedelta(seconds=3 * 300 + 60)
    async with transaction(sessions) as session:
        await ledger.set_state(session, ledger.RECONCILE_LAST_SUCCESS, stale.isoformat())
    response = await web.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["reconcile"]


async def test_readyz_names_redis_when_it_is_down(database_url: str) -> None:
    app = create_app(make_settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "redis" in response.json()["failed"]
    assert "Redis unreachable" in response.json()["checks"]["redis"]["error"]


async def test_readyz_names_the_database_when_it_is_down(redis: ArqRedis) -> None:
    await redis.set(WORKER_HEALTH_KEY, "j_complete=1", ex=30)  # everything else is fine
    broken = make_settings(database_url="postgresql://woobird:hunter2-db-pass@127.0.0.1:1/woobird")
    app = create_app(broken)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    assert body["checks"]["database"]["error"].startswith("database unreachable")
    assert body["checks"]["redis"]["ok"]
    assert "hunter2-db-pass" not in response.text
