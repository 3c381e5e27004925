"""What the worker holds for its lifetime, and how it starts and stops: the shared runtime.

`Services` is built once when the worker starts (`startup`), rebuilt when the wizard's stored
settings change (`current_services`), and closed on stop (`shutdown`). `Stores` is what both
processes hold — the worker's `Services` and the web's `AppState` (app.deps) — enough to queue
again, alert, or retry an order. Job arguments are ids and strings only (arq pickles them); what
wraps every job body (retry, lock, deadline) is app.jobs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory
from app.logs import configure_logging
from app.metrics_refresh import record_moneybird_response
from app.moneybird.client import MoneybirdClient
from app.moneybird.ratelimit import limiter_from_settings
from app.moneybird.reference import ReferenceCache
from app.settings import Settings, load_settings
from app.settings_live import LiveSettings
from app.setup.moneybird_connect import token_refresher
from app.setup.progress import booking_may_start
from app.woocommerce.client import WooCommerceClient

log = structlog.get_logger("woobird.worker")

# The worker books without these (the web process needs them).
WORKER_NOT_NEEDED = frozenset({"ADMIN_TOKEN"})


@dataclass
class Services:
    """Everything a job needs, built once when the worker starts (see `startup`)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    shop: WooCommerceClient
    moneybird: MoneybirdClient
    reference: ReferenceCache
    # Tests shrink every retry delay with this; production leaves it at 1.
    retry_scale: float = 1.0

    def defer(self, seconds: float) -> Retry:
        return Retry(defer=max(0.01, seconds * self.retry_scale))

    async def aclose(self) -> None:
        await self.shop.aclose()
        await self.moneybird.aclose()
        await self.engine.dispose()


async def build_services(settings: Settings, redis: ArqRedis, **transports: Any) -> Services:
    """The worker's services; tests pass `shop_transport`/`moneybird_transport` to reach fakes."""
    engine = create_engine(settings.database_url)
    limiter = await limiter_from_settings(redis, settings)
    moneybird = MoneybirdClient.from_settings(
        settings,
        limiter=limiter,
        transport=transports.get("moneybird_transport"),
        on_response=record_moneybird_response,
        on_unauthorized=token_refresher(settings),
    )
    return Services(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        redis=redis,
        shop=WooCommerceClient.from_settings(settings, transport=transports.get("shop_transport")),
        moneybird=moneybird,
        reference=ReferenceCache(redis, administration_id=settings.moneybird_administration_id),
    )


async def startup(ctx: dict[str, Any]) -> None:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, sandbox=settings.woobird_sandbox)
    if "services" not in ctx:  # tests put their own services (pointing at fakes) in ctx
        engine = create_engine(settings.database_url)
        live = LiveSettings(settings, session_factory(engine))
        ctx["live_engine"] = engine
        ctx["live_settings"] = live
        ctx["retired_services"] = []
        settings = await live.start()
        await _use_settings(ctx, live)
    log.info("worker started", sandbox=settings.woobird_sandbox, invoice_kind=settings.invoice_kind)


async def _use_settings(ctx: dict[str, Any], live: LiveSettings) -> None:
    """Services for the current settings, or none (jobs wait) while the set-up wizard is not done."""
    settings = live.current
    missing = [name for name in settings.problems() if name not in WORKER_NOT_NEEDED]
    if missing or not booking_may_start(live.stored.progress):
        ctx["services"] = None
        log.warning("waiting for the set-up wizard (/admin/setup) or the environment", missing=missing)
        return
    ctx["services"] = await build_services(settings, ctx["redis"])


async def current_services(ctx: dict[str, Any]) -> Services | None:
    """The services, rebuilt first when the stored settings changed since the last job.

    Jobs still running keep the services they started with; those are closed once no job can be
    using them any more (the job timeout has passed).
    """
    live: LiveSettings | None = ctx.get("live_settings")
    if live is not None and await live.refresh():
        retired: list[tuple[float, Services]] = ctx["retired_services"]
        if ctx.get("services") is not None:
            retired.append((time.monotonic(), ctx["services"]))
        await _use_settings(ctx, live)
        horizon = time.monotonic() - live.current.worker_job_timeout_seconds - 10
        for entry in [entry for entry in retired if entry[0] < horizon]:
            retired.remove(entry)
            await entry[1].aclose()
    services: Services | None = ctx.get("services")
    return services


def when_set_up(job: Callable[..., Awaitable[Any]], *, wait_seconds: float | None = 60.0) -> Any:
    """Run the job with current services; before set-up, wait (`wait_seconds`) or skip (None)."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if await current_services(ctx) is None:
            if wait_seconds is None:
                return "woobird is not set up yet"
            raise Retry(defer=wait_seconds)
        return await job(ctx, *args, **kwargs)

    return run


async def shutdown(ctx: dict[str, Any]) -> None:
    services: Services | None = ctx.get("services")
    if services is not None and ctx.get("owns_services", True):
        await services.aclose()
    for _, retired in ctx.get("retired_services", []):
        await retired.aclose()
    if "live_engine" in ctx:
        await ctx["live_engine"].dispose()


class Stores(Protocol):
    """What both processes hold (the worker's `Services`, the web's `AppState`): enough to queue again."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis


def services_of(ctx: dict[str, Any]) -> Services:
    services: Services = ctx["services"]
    return services
