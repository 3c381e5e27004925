"""A fresh deployment (only ADMIN_TOKEN and SECRET_KEY in its environment) with the wizard open in a
signed-in client, the fake shop and the fake Moneybird behind the clients woobird builds."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clients
from app.main import create_app
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import Settings, load_settings
from app.settings_live import LiveSettings
from app.settings_store import read_stored
from tests.conftest import ADMIN_TOKEN as CONFTEST_ADMIN_TOKEN
from tests.conftest import TEST_REDIS_URL
from workers.functions import job_functions

SHOP_URL = "https://shop.sandbox.test"
WOOBIRD_URL = "https://woobird.test"
SECRET_KEY = "7c1e9a4f2b8d6035e4c9b2a7f1d3e5c80b6f2a4d9e7c1358"
ADMIN_TOKEN = CONFTEST_ADMIN_TOKEN  # strong, as every guard token must be


def fresh_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "moneybird_api_url": "https://moneybird.sandbox.test/api/v2",
        "moneybird_oauth_url": "https://moneybird.sandbox.test/oauth",
        "log_format": "console",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@dataclass
class Wizard:
    web: httpx.AsyncClient
    shop_web: httpx.AsyncClient
    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    app: FastAPI
    base: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    transport: httpx.AsyncBaseTransport  # woobird's, for a second browser without the session

    @property
    def state(self) -> Any:
        return self.app.state.woobird

    async def csrf(self) -> str:
        """The session's form token (the same on every page of the session)."""
        page = await self.web.get("/admin/setup/shop")
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found, page.text[:500]
        return found[1]

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.web.post(path, data={"csrf": await self.csrf(), **(data or {})}, headers=headers)

    async def run_worker(self, *, max_jobs: int = -1) -> int:
        """A burst worker of this deployment (its stored settings, the fakes behind the clients):
        it runs what the wizard queued, and returns how many jobs ran."""
        live = LiveSettings(self.base, self.sessions)
        await live.start()
        worker = Worker(
            functions=job_functions(),
            redis_pool=self.redis,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            ctx={"live_settings": live, "connection_services": {}, "retired_services": []},
            keep_result=0,
            max_burst_jobs=max_jobs,
            job_timeout=60,
        )
        await worker.async_run()
        return worker.jobs_complete + worker.jobs_failed + worker.jobs_retried

    async def stored(self) -> dict[str, str]:
        async with self.sessions() as session:
            return (await read_stored(session, self.base)).values

    async def stored_besides_address(self) -> dict[str, str]:
        """What the wizard stored, but for woobird's own address (confirmed before anything else)."""
        return {name: value for name, value in (await self.stored()).items() if name != "PUBLIC_URL"}

    async def approve_on_the_shop(
        self,
        authorize: httpx.Response,
        *,
        decision: str = "approve",
        shop_web: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """Follow woobird's redirect to the shop's page, press a button, come back to woobird."""
        shop_web = shop_web or self.shop_web
        page = await shop_web.get(leaving_for(authorize))
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r"name='([a-z_]+)' value='([^']*)'", page.text))
        fields = {name: value.replace("&amp;", "&") for name, value in fields.items()}
        decided = await shop_web.post("/wc-auth/v1/access_granted", data={**fields, "decision": decision})
        if decided.status_code != 302:
            return decided
        back = urlsplit(decided.headers["location"])
        assert f"{back.scheme}://{back.netloc}" == WOOBIRD_URL
        return await self.web.get(f"{back.path}?{back.query}")

    async def confirm_address(self, address: str, **headers: str) -> httpx.Response:
        """Confirm woobird's own address in step 1, as the admin does once."""
        page = await self.web.get("/admin/setup/shop")
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found, page.text[:500]
        return await self.web.post(
            "/admin/setup/address",
            data={"csrf": found[1], "public_url": address, "back": "shop"},
            headers=headers,
        )

    async def connect_shop(self) -> httpx.Response:
        return await self.approve_on_the_shop(await self.post("/admin/setup/shop", {"shop_url": SHOP_URL}))

    async def paste_token(self) -> httpx.Response:
        return await self.post("/admin/setup/moneybird/token", {"token": self.moneybird.token})

    async def choose_administration(self) -> httpx.Response:
        return await self.post(
            "/admin/setup/moneybird/administration",
            {"administration_id": self.moneybird.administration_id},
        )


def leaving_for(response: httpx.Response) -> str:
    """Where a wizard page that hands the browser to the shop or Moneybird sends it."""
    assert response.status_code == 200, response.text
    found = re.search(r'data-continue href="([^"]+)"', response.text)
    assert found, response.text[:500]
    return html.unescape(found[1])


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@asynccontextmanager
async def open_wizard(
    database_url: str,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    *,
    confirm_address: bool,
    environment: dict[str, Any] | None = None,
) -> AsyncIterator[Wizard]:
    """The wizard of a deployment whose environment holds `environment` besides the essentials."""
    shop = ShopSandbox(url=SHOP_URL)
    moneybird = MoneybirdSandbox()
    moneybird.oauth.redirect_uri = WOOBIRD_URL + "/admin/setup/moneybird/callback"
    shop_transport = httpx.ASGITransport(app=create_shop_app(shop))
    monkeypatch.setattr(
        clients,
        "transports",
        clients.Transports(shop=shop_transport, moneybird=sandbox_transport(moneybird)),
    )
    base = fresh_settings(database_url, **(environment or {}))
    app = create_app(base)
    async with app.router.lifespan_context(app):
        app.state.woobird.live.check_every = 0.0
        woobird_transport = httpx.ASGITransport(app=app)
        async with (
            # An English browser: the wizard tests read its wording; test_language reads the Dutch.
            httpx.AsyncClient(
                transport=woobird_transport, base_url=WOOBIRD_URL, headers={"Accept-Language": "en"}
            ) as web,
            httpx.AsyncClient(transport=shop_transport, base_url=SHOP_URL) as shop_web,
            httpx.AsyncClient(transport=woobird_transport, base_url=WOOBIRD_URL) as shop_to_woobird,
        ):
            shop.http_client = shop_to_woobird  # the shop's server posts keys and pings to woobird
            signed_in = await web.post("/admin/login", data={"token": ADMIN_TOKEN})
            assert signed_in.status_code == 303
            wizard = Wizard(web, shop_web, shop, moneybird, app, base, sessions, redis, woobird_transport)
            if confirm_address:
                confirmed = await wizard.confirm_address(WOOBIRD_URL)
                assert confirmed.status_code == 303, confirmed.text
            yield wizard


@pytest.fixture
async def wizard(
    database_url: str,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Wizard]:
    """Signed in, woobird's own address confirmed (the first thing step 1 asks)."""
    async with open_wizard(database_url, redis, sessions, monkeypatch, confirm_address=True) as wizard:
        yield wizard


@pytest.fixture
async def unconfirmed_wizard(
    database_url: str,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Wizard]:
    """Signed in, woobird's own address not confirmed yet."""
    async with open_wizard(database_url, redis, sessions, monkeypatch, confirm_address=False) as wizard:
        yield wizard
