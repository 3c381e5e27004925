""" "Add a shop": the set-up wizard of a new connection, name first, its settings stored into that
connection (PostgreSQL); on SQLite the button explains why it cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.connections import find_connection
from app.constants import WORKER_HEALTH_KEY
from app.db import create_engine, session_factory
from app.sandbox.samples import sample_carts
from app.settings import normalise_database_url
from app.settings_store import read_stored
from app.setup import tasks
from tests.conftest import _truncate
from tests.setup.conftest import SHOP_URL, WOOBIRD_URL, open_wizard
from tests.setup.test_later_steps import _form, wait_for


@pytest.fixture
async def pg_sessions(postgres_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await _truncate(postgres_url)
    engine = create_engine(normalise_database_url(postgres_url))
    yield session_factory(engine)
    await engine.dispose()


async def test_a_second_shop_is_added_through_the_wizard_into_its_own_connection(
    postgres_url: str,
    redis: ArqRedis,
    pg_sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_wizard(postgres_url, redis, pg_sessions, monkeypatch, confirm_address=False) as wizard:
        refused = await wizard.post("/admin/connections/new", {"name": "Second Shop"})
        assert refused.status_code == 422
        assert "cannot name a connection" in refused.text
        for taken_by_lookup in ("environment", "2"):
            ambiguous = await wizard.post("/admin/connections/new", {"name": taken_by_lookup})
            assert ambiguous.status_code == 422
            assert "it already names one" in ambiguous.text
        started = await wizard.post("/admin/connections/new", {"name": "second"})
        assert started.status_code == 303
        assert started.headers["location"] == "/admin/c/second/setup"
        taken = await wizard.post("/admin/connections/new", {"name": "second"})
        assert taken.status_code == 422
        assert "is taken" in taken.text

        first_step = await wizard.web.get("/admin/c/second/setup")
        assert first_step.headers["location"] == "/admin/c/second/setup/shop"
        address = await wizard.post(
            "/admin/c/second/setup/address", {"public_url": WOOBIRD_URL, "back": "shop"}
        )
        assert address.headers["location"] == "/admin/c/second/setup/shop"
        keys = await wizard.post(
            "/admin/c/second/setup/shop/keys",
            {
                "shop_url": SHOP_URL,
                "consumer_key": wizard.shop.consumer_key,
                "consumer_secret": wizard.shop.consumer_secret,
            },
        )
        assert keys.status_code == 303, keys.text
        assert keys.headers["location"].startswith("/admin/c/second/setup/")
        token = await wizard.post("/admin/c/second/setup/moneybird/token", {"token": wizard.moneybird.token})
        assert token.headers["location"] == "/admin/c/second/setup/moneybird"
        chosen = await wizard.post(
            "/admin/c/second/setup/moneybird/administration",
            {"administration_id": wizard.moneybird.administration_id},
        )
        assert chosen.status_code == 303
        assert chosen.headers["location"].startswith("/admin/c/second/setup/")

        # The History step's preview runs for the new shop, under a task name of its own.
        for cart in sample_carts(datetime.now(UTC) - timedelta(days=3)):
            wizard.shop.add_order(cart)
        since = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
        await wizard.post("/admin/c/second/setup/history", {"action": "preview", "since": since})
        preview = await wait_for(wizard, "history-preview", connection_id=2)
        assert preview.state == "done", preview.message
        assert preview.counts["would_book"] >= 1
        assert await tasks.read_task(wizard.redis, "history-preview") is None  # connection 1's is not it
        shown = (await wizard.web.get("/admin/c/second/setup/history")).text
        assert "total of the invoices that would be booked" in shown

        skipped = await wizard.post("/admin/c/second/setup/products", {"action": "skip"})
        assert skipped.headers["location"] == "/admin/c/second/setup/bookkeeping"
        page = await wizard.web.get("/admin/c/second/setup/bookkeeping")
        saved = await wizard.web.post("/admin/c/second/setup/bookkeeping", data=_form(page.text))
        assert saved.headers["location"] == "/admin/c/second/setup/history"
        later = await wizard.post("/admin/c/second/setup/history", {"action": "from_now"})
        assert later.headers["location"] == "/admin/c/second/setup/install"
        await wizard.redis.set(WORKER_HEALTH_KEY, "j_complete=0")  # a worker is running
        installed = await wizard.post("/admin/c/second/setup/install", {"public_url": WOOBIRD_URL})
        assert installed.status_code == 200, installed.text
        # The shop delivers to the new connection's own URL, and woobird answered its ping there.
        hooks = list(wizard.shop.webhooks.values())
        assert [h["delivery_url"] for h in hooks] == [f"{WOOBIRD_URL}/webhooks/woocommerce/second"]
        assert [d.status for d in wizard.shop.deliveries if d.ping] == [200]
        assert (await wizard.web.get("/admin/c/second")).status_code == 200  # its dashboard, not the wizard

        second = await find_connection(pg_sessions, "second")
        async with pg_sessions() as session:
            theirs = (await read_stored(session, wizard.base, connection_id=second.id)).values
            first = (await read_stored(session, wizard.base)).values
        assert theirs["WOOCOMMERCE_URL"] == SHOP_URL
        assert theirs["WOOCOMMERCE_CONSUMER_KEY"] == wizard.shop.consumer_key
        assert theirs["MONEYBIRD_ADMINISTRATION_ID"] == wizard.moneybird.administration_id
        assert theirs["PUBLIC_URL"] == WOOBIRD_URL
        assert hooks[0]["secret"] == theirs["WOOCOMMERCE_WEBHOOK_SECRET"]
        assert not {"WOOCOMMERCE_URL", "MONEYBIRD_API_TOKEN", "PUBLIC_URL"} & set(
            first
        )  # connection 1 untouched

        overview = await wizard.web.get("/admin")
        assert 'data-connection="environment"' in overview.text
        assert 'data-connection="second"' in overview.text


async def test_on_sqlite_add_a_shop_explains_why_it_cannot(
    sqlite_url: str,
    redis: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = create_engine(normalise_database_url(sqlite_url))
    sessions = session_factory(engine)
    async with open_wizard(sqlite_url, redis, sessions, monkeypatch, confirm_address=False) as wizard:
        page = await wizard.web.get("/admin/connections")
        assert "a second connection needs PostgreSQL" in page.text
        assert "data-add-shop" not in page.text
        refused = await wizard.post("/admin/connections/new", {"name": "second"})
        assert refused.status_code == 422
        assert "a second connection needs PostgreSQL" in refused.text
        assert (await wizard.web.get("/admin")).headers["location"] == "/admin/setup"  # one shop: as before
    await engine.dispose()
