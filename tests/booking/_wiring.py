"""Fake shop + fake Moneybird wired to real Services (real Redis, real SQL) for the sync tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis

from app.booking import ledger
from app.runtime import Services
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.woocommerce import ShopSandbox
from app.schema import OrderRecord
from tests.factories import order_document
from tests.harness import wired_fakes


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
    async with wired_fakes(database_url=database_url, redis=redis, start=start, **overrides) as fakes:
        yield Wired(shop=fakes.shop, moneybird=fakes.moneybird, services=fakes.services, redis=redis)
