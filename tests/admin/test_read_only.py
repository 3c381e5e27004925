"""One shop (SQLite and PostgreSQL): /admin looks as before connections existed, and the shop's
read-only token shows its dashboard and orders, changes nothing, and signs out."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.auth import VIEWER_COOKIE_NAME, csrf_token
from app.booking import ledger
from app.schema import OrderState
from app.settings import Settings
from tests.admin.conftest import FAILED_ID, FAILED_REASON, logout_csrf, sign_in


async def test_one_shop_keeps_its_dashboard_at_admin(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = await client.get("/admin")
    assert page.status_code == 200
    assert "Recent orders" in page.text
    assert "data-connection=" not in page.text  # no list of shops with one shop
    assert "data-shop=" not in page.text  # no shop named in the header with one shop
    shops = await client.get("/admin/connections")  # the list, where "Add a shop" starts
    assert 'data-connection="environment"' in shops.text


async def test_the_read_only_token_shows_the_dashboard_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, settings)
    made = await client.post(
        "/admin/connections/environment/token", data={"csrf": logout_csrf((await client.get("/admin")).text)}
    )
    token = re.search(r"<code data-token>([^<]+)</code>", made.text)
    assert token
    client.cookies.clear()
    signed_in = await client.post("/admin/login", data={"token": token[1]})
    assert signed_in.headers["location"] == "/admin/c/environment"

    page = await client.get("/admin")
    assert page.status_code == 200
    assert FAILED_REASON in page.text
    assert "/retry" not in page.text
    assert "/admin/settings" not in page.text
    assert (
        'data-lag="ok"' in page.text
    )  # its own shop's webhooks' lag (per shop: tests/admin/test_many_shops.py)
    assert (await client.get(f"/admin/orders/{FAILED_ID}")).status_code == 200
    csrf = csrf_token(settings, client.cookies[VIEWER_COOKIE_NAME])
    refused = await client.post(f"/admin/orders/{FAILED_ID}/retry", data={"csrf": csrf})
    assert refused.status_code == 403
    assert "this sign-in shows one shop&#39;s dashboard and orders only" in refused.text
    async with seeded() as session:
        record = await ledger.get_order(session, FAILED_ID)
    assert record is not None
    assert record.state == OrderState.FAILED.value  # nothing was queued
    for path in ("/admin/settings", "/admin/setup", "/admin/report", "/admin/connections"):
        assert (await client.get(path)).status_code == 403, path

    signed_out = await client.post("/admin/logout", data={"csrf": csrf})
    assert signed_out.status_code == 303
    assert (await client.get("/admin")).status_code == 401
