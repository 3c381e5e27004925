"""Fake shop + fake Moneybird wired to real Services (real Redis, real SQL) for the sync tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from arq.connections import ArqRedis

from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sync import ledger
from app.sync.jobs import Services, build_services
from app.sync.ledger import OrderRecord
from tests.conftest import make_settings
from tests.factories import order_document


@dataclass
class Wired:
    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    services: Services
    redis: ArqRedis

    def add_order(self, order_id: int, **kwargs: Any) -> dict[str, Any]:
        return self.shop.add_order(order_document(order_id, **kwargs))

    async def record(self, order_id: int) -> OrderRecord | None:
        async with self.services.sessions() as session:
            return await ledger.get_order(session, order_id)

    async def job_ids(self) -> set[str]:
        keys = await self.redis.keys("arq:job:*")
        return {key.decode().removeprefix("arq:job:") for key in keys}


@asynccontextmanager
async def wired(
    *, database_url: str, redis: ArqRedis, start: datetime | None = None, **overrides: Any
) -> AsyncIterator[Wired]:
    shop = ShopSandbox(ping_on_create=False, start=start)
    moneybird = MoneybirdSandbox()
    if overrides.get("moneybird_ledger_account_id") == "Omzet":  # a name: the sandbox assigns the id
        overrides["moneybird_ledger_account_id"] = moneybird.ledger_account_id("Omzet")
    settings = make_settings(
        database_url=database_url,
        woocommerce_url=shop.url,
        woocommerce_consumer_key=shop.consumer_key,
        woocommerce_consumer_secret=shop.consumer_secret,
        moneybird_api_token=moneybird.token,
        moneybird_administration_id=moneybird.administration_id,
        **overrides,
    )
    services = await build_services(
        settings,
        redis,
        shop_transport=httpx.ASGITransport(app=create_shop_app(shop)),
        moneybird_transport=sandbox_transport(moneybird),
    )
    try:
        yield Wired(shop=shop, moneybird=moneybird, services=services, redis=redis)
    finally:
        await services.aclose()
