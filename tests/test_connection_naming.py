"""What tells a person which shop something is about once woobird holds many: alerts and the month
report name the connection; `woobird check` looks for a connection's webhook at its own URL; and a
SQLite ledger holding more than one connection is called out by /readyz, `woobird check` and both
processes' start, naming PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from app.alerts import alert
from app.booking import ledger
from app.checks import Checker
from app.constants import WORKER_HEALTH_KEY
from app.db import create_engine, session_factory, transaction
from app.main import create_app
from app.report import monthly_report, render_report
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import Settings
from app.settings_store import ensure_connection
from app.woocommerce.client import WooCommerceClient
from tests.conftest import _truncate, make_settings

HOOK = "https://alerts.example.test/naming"
MONTH = "2026-03"
SQLITE_SAYS = "more connections need PostgreSQL"


@dataclass
class Target:
    settings: Settings
    redis: Any
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def engine_url(postgres_url: str) -> str:
    await _truncate(postgres_url)
    return postgres_url


async def _connections(url: str, *named: tuple[int, str]) -> None:
    engine = create_engine(make_settings(database_url=url).database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            for connection_id, name in named:
                await ensure_connection(session, connection_id, name=name)
    finally:
        await engine.dispose()


@pytest.fixture
def hook() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))


def _texts(route: Any) -> list[str]:
    return [json.loads(call.request.content)["text"] for call in route.calls]


# ── alerts and the month report name the connection ─────────────────────────────────────────


async def test_alerts_name_their_connection_once_there_are_several(
    engine_url: str, redis: ArqRedis, hook: Any
) -> None:
    settings = make_settings(database_url=engine_url, alert_webhook_url=HOOK)
    engine = create_engine(settings.database_url)
    try:
        first = Target(settings, redis, session_factory(engine))
        second = Target(settings, redis, session_factory(engine, connection_id=2))
        await alert(first, cause="order-failed:1042", message="order 1042 failed")  # alone: as before
        await _connections(engine_url, (2, "second"))
        await alert(second, cause="order-failed:1042", message="order 1042 failed")
        await alert(first, cause="order-failed:1043", message="order 1043 failed")
    finally:
        await engine.dispose()

    assert _texts(hook) == [
        "woobird: order 1042 failed",
        "woobird (connection second): order 1042 failed",
        "woobird (connection environment): order 1043 failed",
    ]


async def test_the_month_report_names_its_connection(engine_url: str) -> None:
    await _connections(engine_url, (2, "second"))
    engine = create_engine(make_settings(database_url=engine_url).database_url)
    try:
        sessions = session_factory(engine, connection_id=2)
        moment = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        async with transaction(sessions) as session:
            await ledger.record_delivery(
                session, order_id=1042, order_number="1042", date_modified=moment, date_paid=moment
            )
        report = await monthly_report(sessions, month=MONTH)
    finally:
        await engine.dispose()

    assert report.connection == "second"
    assert report.waiting == 1  # its own order, read from its own ledger
    out = StringIO()
    render_report(report, Console(file=out, width=200), language="en")
    assert f"Month report {MONTH} of connection second" in out.getvalue()
    out = StringIO()
    render_report(report, Console(file=out, width=200), language="nl")
    assert f"Maandrapport {MONTH} van koppeling second" in out.getvalue()


async def test_a_lone_connections_report_names_none(sqlite_url: str) -> None:
    engine = create_engine(make_settings(database_url=sqlite_url).database_url)
    try:
        report = await monthly_report(session_factory(engine), month=MONTH)
    finally:
        await engine.dispose()
    assert report.connection is None


# ── `woobird check` looks at the connection's own URLs ───────────────────────────────────────


async def test_check_looks_for_a_connections_webhook_at_its_own_url() -> None:
    shop = ShopSandbox(ping_on_create=False)
    settings = make_settings(
        woocommerce_url=shop.url,
        woocommerce_consumer_key=shop.consumer_key,
        woocommerce_consumer_secret=shop.consumer_secret,
        public_url="https://woobird.example",
    )
    shop.add_webhook(delivery_url="https://woobird.example/webhooks/woocommerce", secret="s" * 32)
    client = WooCommerceClient.from_settings(
        settings, transport=httpx.ASGITransport(app=create_shop_app(shop))
    )
    try:
        second = Checker(settings, connection_id=2, connection_name="second")
        await second.check_webhook(client)
        # Connection 1's webhook is not the second shop's.
        assert [(f.subject, f.ok) for f in second.findings] == [("webhook", False)]
        assert "/webhooks/woocommerce/second" in second.findings[0].message

        shop.add_webhook(delivery_url="https://woobird.example/webhooks/woocommerce/second", secret="s" * 32)
        second = Checker(settings, connection_id=2, connection_name="second")
        await second.check_webhook(client)
        assert [(f.subject, f.ok) for f in second.findings] == [("webhook", True)]
    finally:
        await client.aclose()


# ── more connections need PostgreSQL ─────────────────────────────────────────────────────────


async def test_sqlite_holding_two_connections_is_called_out_by_check_readyz_and_the_start(
    sqlite_url: str, redis: ArqRedis
) -> None:
    settings = make_settings(database_url=sqlite_url)
    await _connections(sqlite_url, (2, "copied-over"))

    checker = Checker(settings)
    await checker.check_services()
    database = [(f.subject, f.ok) for f in checker.findings if f.subject == "DATABASE_URL"]
    assert database == [("DATABASE_URL", False)]
    assert SQLITE_SAYS in next(f.message for f in checker.findings if f.subject == "DATABASE_URL")

    app = create_app(settings)
    with capture_logs() as logs:
        async with app.router.lifespan_context(app):
            await redis.set(WORKER_HEALTH_KEY, "j_complete=1", ex=30)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://woobird.test"
            ) as web:
                answer = await web.get("/readyz")
    assert answer.status_code == 503
    assert "connections" in answer.json()["failed"]
    assert SQLITE_SAYS in answer.json()["checks"]["connections"]["error"]
    assert [e["event"] for e in logs if e["log_level"] == "error" and SQLITE_SAYS in e["event"]]


async def test_one_connection_on_sqlite_or_two_on_postgresql_is_fine(
    database_url: str, redis: ArqRedis
) -> None:
    settings = make_settings(database_url=database_url)
    if not settings.is_sqlite:
        await _connections(database_url, (2, "second"))
    checker = Checker(settings)
    await checker.check_services()
    assert [f.subject for f in checker.findings if not f.ok] == []
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://woobird.test") as web,
    ):
        answer = await web.get("/readyz")
    assert answer.json()["checks"]["connections"] == {"ok": True}
