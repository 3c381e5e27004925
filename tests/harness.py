"""End-to-end wiring for tests: the fake shop and fake Moneybird, the real web app, a real worker.

    shop (ShopSandbox) ──signed webhook──▶ web (create_app) ──▶ Redis ──▶ burst arq worker
         ▲                                                                   │
         └──────────── WooCommerce REST (in-process) ◀── Services ──▶ Moneybird fake (in-process)

Use the `harness` fixture (tests/conftest.py). Everything is real except the two vendors, which
are faked at the HTTP boundary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from arq.connections import ArqRedis
from arq.typing import StartupShutdown
from arq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import ledger
from app.constants import QUEUE_NAME, WEBHOOK_PATH
from app.main import create_app
from app.runtime import Services, build_services
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.checkout import build_order
from app.schema import OrderRecord
from app.settings import Settings
from tests.conftest import make_settings
from workers.functions import job_functions


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """A long-running worker for the body of the block; its in-flight jobs are stopped with it.

    Cancelling `async_run` alone leaves the jobs it started running (arq keeps them in
    `worker.tasks`): they would go on using the test's database and Redis through its teardown.
    arq's own `Worker.close()` would also close the test's Redis client.
    """
    main = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        main.cancel()
        jobs = list(worker.tasks.values())
        for job in jobs:
            job.cancel()
        outcomes = await asyncio.gather(main, *jobs, return_exceptions=True)
        # A worker that failed to start says why here, not as a hang in the block above.
        for outcome in outcomes[:1]:
            if isinstance(outcome, Exception):
                raise outcome


@dataclass
class Harness:
    settings: Settings
    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    services: Services
    redis: ArqRedis
    web: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    jobs_run: list[int] = field(default_factory=list)

    def add_paid_order(self, **cart: Any) -> dict[str, Any]:
        """A completed, paid order built with WooCommerce's checkout arithmetic, stored in the shop."""
        document = build_order(**cart)
        return self.shop.add_order(document)

    async def deliver(
        self, order_id: int, *, topic: str = "order.updated", to: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """WooCommerce's delivery of the order as it is now, signed with the webhook secret.

        `to` delivers to another web app (one started with broken settings, say) instead.
        """
        body = self.shop.webhook_body(order_id, topic)
        secret = self.settings.woocommerce_webhook_secret.get_secret_value()
        headers = {
            "content-type": "application/json",
            "x-wc-webhook-topic": topic,
            "x-wc-webhook-signature": _sign(secret, body),
            "x-wc-webhook-source": self.shop.url + "/",
        }
        return await (to or self.web).post(WEBHOOK_PATH, content=body, headers=headers)

    async def run_worker(
        self,
        *,
        max_jobs: int = -1,
        connections: Mapping[int, Services] | None = None,
        on_job_start: StartupShutdown | None = None,
    ) -> int:
        """Run queued jobs (and the retries they schedule) until the queue is empty, or until
        `max_jobs` were started; `connections` are the services of connections other than 1;
        `on_job_start` sees each run's arq ctx (job id, try)."""
        others = {connection_id: (None, services) for connection_id, services in (connections or {}).items()}
        worker = Worker(
            functions=job_functions(),
            redis_pool=self.redis,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            ctx={"services": self.services, "owns_services": False, "connection_services": others},
            keep_result=0,
            max_burst_jobs=max_jobs,
            max_tries=25,
            job_timeout=60,
            on_job_start=on_job_start,
        )
        await worker.async_run()
        done = worker.jobs_complete + worker.jobs_failed
        self.jobs_run.append(done)
        return done

    async def queued(self) -> int:
        return int(await self.redis.zcard(QUEUE_NAME))

    async def record(self, order_id: int) -> OrderRecord | None:
        async with self.sessions() as session:
            return await ledger.get_order(session, order_id)

    def invoices_for(self, order_number: str) -> list[dict[str, Any]]:
        """Every sales invoice in the fake Moneybird whose reference names this order."""
        reference = f"WooCommerce #{order_number}"
        return [inv for inv in self.moneybird.sales_invoices.values() if inv.get("reference") == reference]


def _sign(secret: str, body: bytes) -> str:
    from app.webhooks import sign

    return sign(secret, body)


@dataclass
class Fakes:
    """The two fake vendors and real Services pointed at them (no web app, no worker)."""

    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    settings: Settings
    services: Services


@asynccontextmanager
async def wired_fakes(
    *, database_url: str, redis: ArqRedis, start: datetime | None = None, **overrides: Any
) -> AsyncIterator[Fakes]:
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
    services.retry_scale = 0.002
    try:
        yield Fakes(shop=shop, moneybird=moneybird, settings=settings, services=services)
    finally:
        await services.aclose()


@asynccontextmanager
async def open_harness(*, database_url: str, redis: ArqRedis, **overrides: Any) -> AsyncIterator[Harness]:
    async with wired_fakes(database_url=database_url, redis=redis, **overrides) as fakes:
        app = create_app(fakes.settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://woobird.test") as web,
        ):
            yield Harness(
                settings=fakes.settings,
                shop=fakes.shop,
                moneybird=fakes.moneybird,
                services=fakes.services,
                redis=redis,
                web=web,
                sessions=fakes.services.sessions,
            )
