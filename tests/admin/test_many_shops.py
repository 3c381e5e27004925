"""/admin with many shops (PostgreSQL): the overview of every connection, each connection's own
dashboard, pause/resume/remove from the browser, and a shop owner's read-only sign-in that reaches
its own connection's pages and nothing else — every /admin route is tried against it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.auth import COOKIE_NAME, VIEWER_COOKIE_NAME, csrf_token
from app.booking import ledger
from app.connections import add_connection, find_connection
from app.db import create_engine, session_factory, transaction
from app.delivery_lag import recent_lags
from app.main import create_app
from app.settings import Settings
from tests.admin.conftest import sign_in
from tests.admin.test_csrf import _api_routes
from tests.conftest import _truncate, make_settings
from tests.factories import order_document, signed_headers, wc_body
from tests.ledger_rows import add_booked_order, add_failed_order

ORDER = 1041  # the same order id in both shops
PAID = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SECOND = {
    "WOOCOMMERCE_URL": "https://second-shop.nl",
    "WOOCOMMERCE_CONSUMER_KEY": "ck_" + "c3" * 20,
    "WOOCOMMERCE_CONSUMER_SECRET": "cs_" + "d4" * 20,
    "WOOCOMMERCE_WEBHOOK_SECRET": "9b1f4e7a2c8d3f6e0a5b9c2d7e4f1a8b3c6d9e2f",
    "MONEYBIRD_API_TOKEN": "mbt_second_9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a",
    "MONEYBIRD_ADMINISTRATION_ID": "223456789012345678",
}
SECRET_KEY = "7c1e9a4f2b8d6035e4c9b2a7f1d3e5c80b6f2a4d9e7c1358"


@pytest.fixture
async def two_shops(postgres_url: str) -> AsyncIterator[tuple[Settings, async_sessionmaker[AsyncSession]]]:
    """The environment's shop and `second`, each with an order 1041 of its own: booked in the
    first, failed (with its own marker) in the second."""
    await _truncate(postgres_url)
    settings = make_settings(database_url=postgres_url, secret_key=SECRET_KEY)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    second = await add_connection(sessions, base=settings, name="second", values=SECOND, actor="test")
    async with transaction(sessions) as session:
        await add_booked_order(
            session, order_id=ORDER, total=Decimal("36.00"), invoice_number="FIRST-0041", paid=PAID
        )
    async with transaction(session_factory(engine, connection_id=second)) as session:
        await add_failed_order(
            session,
            order_id=ORDER,
            total=Decimal("18.75"),
            paid=PAID,
            error="SECOND-SHOP-MARKER",
            kind="rejected",
        )
    yield settings, sessions
    await engine.dispose()


@pytest.fixture
async def web(
    two_shops: tuple[Settings, async_sessionmaker[AsyncSession]], redis: ArqRedis
) -> AsyncIterator[httpx.AsyncClient]:
    settings, _ = two_shops
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://woobird.test", headers={"Accept-Language": "en"}
        ) as client:
            yield client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page[:400]
    return found[1]


def _row(page: str, name: str) -> str:
    found = re.search(rf'<tr data-connection="{name}".*?</tr>', page, re.S)
    assert found, page[:600]
    return found[0]


async def test_the_overview_shows_every_shop_with_its_backlog_and_failures(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]]
) -> None:
    settings, sessions = two_shops
    # The first shop reconciled a minute ago; the second not for a day (three intervals are allowed).
    now = datetime.now(UTC)
    async with transaction(sessions) as session:
        await ledger.set_state(
            session, ledger.RECONCILE_LAST_SUCCESS, (now - timedelta(minutes=1)).isoformat()
        )
    second_id = (await find_connection(sessions, "second")).id
    engine = create_engine(settings.database_url)
    async with transaction(session_factory(engine, connection_id=second_id)) as session:
        await ledger.set_state(session, ledger.RECONCILE_LAST_SUCCESS, (now - timedelta(days=1)).isoformat())
    await engine.dispose()
    await sign_in(web, settings)
    page = await web.get("/admin")
    assert page.status_code == 200
    first, second = _row(page.text, "environment"), _row(page.text, "second")
    assert 'data-reconcile="ok"' in first
    assert "all good" in first
    assert 'data-reconcile="late"' in second
    assert "needs attention" in second
    assert "reconciliation has not succeeded for three intervals" in second
    assert 'data-failures="0"' in first
    assert 'data-failures="1"' in second
    assert "https://second-shop.nl" in second
    assert 'href="/admin/c/second"' in second
    assert 'data-state="booking"' in second

    # Each dashboard, and each order page, reads its own connection's rows only.
    own = await web.get("/admin/c/second")
    assert own.status_code == 200
    assert "SECOND-SHOP-MARKER" in own.text
    assert "FIRST-0041" not in own.text
    assert 'href="/admin/c/second/orders/1041"' in own.text
    assert 'data-shop="second"' in own.text  # the header names the shop
    mine = await web.get(f"/admin/c/second/orders/{ORDER}")
    assert "SECOND-SHOP-MARKER" in mine.text
    assert "FIRST-0041" not in mine.text
    theirs = await web.get(f"/admin/c/environment/orders/{ORDER}")
    assert "FIRST-0041" in theirs.text
    assert "SECOND-SHOP-MARKER" not in theirs.text
    assert (await web.get("/admin/c/nowhere")).status_code == 404


async def test_pause_resume_and_remove_from_the_browser_call_the_connection_functions(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]]
) -> None:
    settings, sessions = two_shops
    await sign_in(web, settings)
    csrf = _csrf((await web.get("/admin")).text)

    paused = await web.post("/admin/connections/second/pause", data={"csrf": csrf})
    assert paused.status_code == 303
    assert (await find_connection(sessions, "second")).paused_at is not None
    assert 'data-state="paused"' in _row((await web.get("/admin")).text, "second")
    assert (await web.post("/admin/connections/second/resume", data={"csrf": csrf})).status_code == 303
    assert (await find_connection(sessions, "second")).paused_at is None

    # Remove asks for the name: a wrong one removes nothing.
    wrong = await web.post("/admin/connections/second/remove", data={"csrf": csrf, "confirm": "secnod"})
    assert wrong.status_code == 422
    assert "type the connection&#39;s name, second, in the box" in wrong.text
    assert (await find_connection(sessions, "second")).removed_at is None
    # A refusal shows the function's own sentence.
    kept = await web.post(
        "/admin/connections/environment/remove", data={"csrf": csrf, "confirm": "environment"}
    )
    assert kept.status_code == 409
    assert "the environment&#39;s connection stays" in kept.text
    removed = await web.post("/admin/connections/second/remove", data={"csrf": csrf, "confirm": "second"})
    assert removed.status_code == 303
    assert (await find_connection(sessions, "second")).removed_at is not None
    again = await web.post("/admin/connections/second/resume", data={"csrf": csrf})
    assert again.status_code == 409
    assert "add it again under a new name" in again.text


async def _viewer(web: httpx.AsyncClient, settings: Settings, name: str = "second") -> str:
    """Make the shop's read-only token as the admin, then sign in with it instead."""
    await sign_in(web, settings)
    made = await web.post(
        f"/admin/connections/{name}/token", data={"csrf": _csrf((await web.get("/admin")).text)}
    )
    assert made.status_code == 200
    found = re.search(r"<code data-token>([^<]+)</code>", made.text)
    assert found
    web.cookies.clear()
    signed_in = await web.post("/admin/login", data={"token": found[1]})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == f"/admin/c/{name}"
    assert COOKIE_NAME not in web.cookies
    assert VIEWER_COOKIE_NAME in web.cookies
    return found[1]


# What a read-only sign-in may reach: sign in and out, the language, and its own connection's
# dashboard and order pages (and /admin, which sends it to its dashboard).
VIEWER_MAY = {
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
    ("POST", "/admin/language"),
    ("POST", "/admin/logout"),
    ("GET", "/admin"),
    ("GET", "/admin/c/{connection}"),
    ("GET", "/admin/c/{connection}/orders/{order_id}"),
}


def _fill(path: str, connection: str) -> str:
    return (
        path.replace("{connection}", connection)
        .replace("{order_id}", str(ORDER))
        .replace("{name}", "second")
        .replace("{finding_id}", "1")
    )


async def test_a_read_only_token_reaches_its_own_dashboard_and_nothing_else(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]]
) -> None:
    settings, _ = two_shops
    await _viewer(web, settings)
    csrf = csrf_token(settings, web.cookies[VIEWER_COOKIE_NAME])  # a valid form token of its session
    own = await web.get("/admin/c/second")
    assert own.status_code == 200
    assert "SECOND-SHOP-MARKER" in own.text
    assert "/retry" not in own.text
    assert "/admin/settings" not in own.text
    assert (await web.get(f"/admin/c/second/orders/{ORDER}")).status_code == 200
    assert (await web.get("/admin")).headers["location"] == "/admin/c/second"
    # The same order id in the other shop, by its name, its id, or the environment's own URLs.
    for url in (
        f"/admin/c/environment/orders/{ORDER}",
        f"/admin/c/1/orders/{ORDER}",
        f"/admin/orders/{ORDER}",
    ):
        response = await web.get(url)
        assert response.status_code == 403, url
        assert "FIRST-0041" not in response.text
    assert (await web.get("/admin/c/nowhere")).status_code == 403  # unknown names look the same

    app: FastAPI = web._transport.app  # type: ignore[attr-defined]
    routes = [route for route in _api_routes(app.routes) if route.path.startswith("/admin")]
    assert len(routes) >= 40, [route.path for route in routes]  # a list that missed routes proves nothing
    tried = 0
    for route in routes:
        for method in sorted(route.methods or ()):
            if (method, route.path) in VIEWER_MAY and "{connection}" not in route.path:
                continue
            for connection in ("second", "environment"):
                if (method, route.path) in VIEWER_MAY and connection == "second":
                    continue
                url = _fill(route.path, connection)
                response = await web.request(method, url, data={"csrf": csrf} if method == "POST" else None)
                assert response.status_code == 403, (method, url, response.status_code)
                tried += 1
    assert tried >= 60


async def test_a_new_token_signs_the_old_one_out_and_a_removed_shop_takes_no_sign_in(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]]
) -> None:
    settings, _ = two_shops
    old_token = await _viewer(web, settings)
    old_cookie = web.cookies[VIEWER_COOKIE_NAME]
    await _viewer(web, settings)  # a new token
    web.cookies.clear()
    web.cookies.set(VIEWER_COOKIE_NAME, old_cookie, path="/admin")
    assert (await web.get("/admin/c/second")).status_code == 401
    web.cookies.clear()
    assert (await web.post("/admin/login", data={"token": old_token})).status_code == 401

    token = await _viewer(web, settings)
    web.cookies.clear()
    await sign_in(web, settings)
    csrf = _csrf((await web.get("/admin")).text)
    await web.post("/admin/connections/second/remove", data={"csrf": csrf, "confirm": "second"})
    web.cookies.clear()
    assert (await web.post("/admin/login", data={"token": token})).status_code == 401


async def test_the_shops_list_reads_dutch_to_a_dutch_browser(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]]
) -> None:
    settings, _ = two_shops
    await sign_in(web, settings)
    page = (await web.get("/admin", headers={"Accept-Language": "nl"})).text
    for words in (
        "Winkels",
        "Een winkel toevoegen",
        "Pauzeren",
        "Nieuw token om mee te kijken",
        "Achterstand",
    ):
        assert words in page, words
    for words in ("Add a shop", "Pause", "New read-only token", "Backlog"):
        assert words not in page, words
    csrf = _csrf(page)
    wrong = await web.post(
        "/admin/connections/second/remove",
        data={"csrf": csrf, "confirm": "x"},
        headers={"Accept-Language": "nl"},
    )
    assert "typ de naam van de koppeling, second, in het vak" in wrong.text


def _setting(page: str, name: str) -> tuple[str, str]:
    """(source, shown value) of one row of a settings page."""
    found = re.search(rf'<tr data-setting="{name}" data-source="(\w+)">.*?</tr>', page, re.S)
    assert found, page[:600]
    value = re.search(r"<code>([^<]*)</code></td>\s*<td class=\"muted\"", found[0])
    return found[1], value[1] if value else ""


async def test_each_shop_has_a_settings_page_of_its_own(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]]
) -> None:
    settings, _ = two_shops
    await sign_in(web, settings)
    second = await web.get("/admin/c/second/settings")
    assert second.status_code == 200
    # Its shop and administration are its own, from the store, even where the environment sets
    # connection 1's; what the deployment shares is the environment's.
    assert _setting(second.text, "WOOCOMMERCE_URL") == ("wizard", SECOND["WOOCOMMERCE_URL"])
    assert _setting(second.text, "MONEYBIRD_ADMINISTRATION_ID") == (
        "wizard",
        SECOND["MONEYBIRD_ADMINISTRATION_ID"],
    )
    assert _setting(second.text, "REDIS_URL")[0] == "environment"
    assert settings.woocommerce_url not in second.text
    assert SECOND["MONEYBIRD_API_TOKEN"] not in second.text  # masked
    assert 'href="/admin/c/second/settings"' in second.text  # the shop's own menu leads here

    first = await web.get("/admin/settings")
    assert _setting(first.text, "WOOCOMMERCE_URL") == ("environment", settings.woocommerce_url)
    assert SECOND["WOOCOMMERCE_URL"] not in first.text
    assert 'data-change="WOOCOMMERCE_URL"' not in first.text  # the second shop's change is its own
    assert 'data-change="WOOCOMMERCE_URL"' in second.text

    assert (await web.get("/admin/c/nowhere/settings")).status_code == 404


async def test_each_shop_s_webhook_lags_are_its_own(
    web: httpx.AsyncClient, two_shops: tuple[Settings, async_sessionmaker[AsyncSession]], redis: ArqRedis
) -> None:
    """The same order id delivered late by the second shop and promptly by the first: each dashboard,
    list and histogram shows its own shop's lag."""
    settings, sessions = two_shops
    second = (await find_connection(sessions, "second")).id
    histogram = "woobird_webhook_delivery_lag_seconds_sum"
    # Other tests' deliveries to connection 1 are in the same process's histogram already.
    before = {c: REGISTRY.get_sample_value(histogram, {"connection": c}) or 0.0 for c in ("1", str(second))}
    now = datetime.now(UTC).replace(microsecond=0)
    for url, secret, late in (
        ("/webhooks/woocommerce", settings.woocommerce_webhook_secret.get_secret_value(), 2),
        ("/webhooks/woocommerce/second", SECOND["WOOCOMMERCE_WEBHOOK_SECRET"], 150),
    ):
        document = order_document(7301, modified=now - timedelta(seconds=late), paid=now - timedelta(hours=1))
        body = wc_body(document)
        response = await web.post(url, content=body, headers=signed_headers(body, secret=secret))
        # Lags are measured for every order the shop delivers, queued or not (the second shop's
        # SYNC_SINCE is the moment it was added).
        assert response.status_code in (200, 202), response.text
    await sign_in(web, settings)

    first_lag = (await web.get("/admin/c/environment", headers={"accept": "application/json"})).json()
    second_lag = (await web.get("/admin/c/second", headers={"accept": "application/json"})).json()
    assert first_lag["delivery_lag"]["deliveries"] == second_lag["delivery_lag"]["deliveries"] == 1
    assert 2 <= first_lag["delivery_lag"]["median_seconds"] < 10
    assert 150 <= second_lag["delivery_lag"]["median_seconds"] < 160
    assert (await recent_lags(redis, connection_id=second)).lags == (
        second_lag["delivery_lag"]["median_seconds"],
    )
    assert 'data-lag="ok"' in (await web.get("/admin/c/second")).text  # one late delivery is no pattern
    for connection, low, high in (("1", 2, 10), (str(second), 150, 160)):
        observed = REGISTRY.get_sample_value(histogram, {"connection": connection})
        assert observed is not None
        assert low <= observed - before[connection] < high
