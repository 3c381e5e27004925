"""The web app with the dashboard mounted, and a ledger holding one booked and one failed order."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.routes import router as admin_router
from app.db import transaction
from app.main import create_app
from app.settings import Settings
from tests.ledger_rows import DEMO_TAX_RATE_HIGH, add_booked_order, add_failed_order

BOOKED_ID = 1041
FAILED_ID = 1042
FAILED_REASON = "Moneybird rejected the order: tax_rate_id: is not active (xq7-marker)"
PAID = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def app_with_admin(settings: Settings) -> FastAPI:
    """create_app, plus the dashboard router when app.main does not mount it (yet)."""
    app = create_app(settings)
    if not any(getattr(route, "path", "").startswith("/admin") for route in app.routes):
        app.include_router(admin_router)
    return app


async def seed_booked_and_failed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as session:
        await add_booked_order(
            session,
            order_id=BOOKED_ID,
            total=Decimal("36.00"),
            invoice_number="2026-0041",
            paid=PAID,
            vat=[(DEMO_TAX_RATE_HIGH, "6.25", "6.25")],
        )
        await add_failed_order(
            session,
            order_id=FAILED_ID,
            total=Decimal("18.75"),
            paid=PAID,
            error=FAILED_REASON,
            kind="rejected",
        )


@pytest.fixture
async def seeded(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    await seed_booked_and_failed(sessions)
    return sessions


@pytest.fixture
async def client(settings: Settings, redis: ArqRedis, seeded: object) -> AsyncIterator[httpx.AsyncClient]:
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as web:
            yield web


async def sign_in(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.post("/admin/login", data={"token": settings.admin_token.get_secret_value()})
    assert response.status_code == 303, response.text


def logout_csrf(page: str) -> str:
    """The CSRF token of the Sign out form on a dashboard page."""
    match = re.search(r'action="/admin/logout"><input type="hidden" name="csrf" value="([0-9a-f]+)"', page)
    assert match, "no Sign out form with a CSRF token on the page"
    return match[1]
