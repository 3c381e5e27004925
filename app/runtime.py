"""What the worker holds for its lifetime, and how it starts and stops: the shared runtime.

`Services` is built once when the worker starts (`startup`), rebuilt when the wizard's stored
settings change (`current_services`), and closed on stop (`shutdown`). `Stores` is what both
processes hold — the worker's `Services` and the web's `AppState` (app.deps) — enough to queue
again, alert, or retry an order. Job arguments are ids and strings only (arq pickles them); what
wraps every job body (retry, lock, deadline) is app.jobs.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog
from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.connection_scope import connection_of_sessions, contact_book_of, contact_book_of_sessions
from app.connections import is_paused, say_sqlite_connections_problem
from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import create_engine, session_factory
from app.invoicing.invoice_plan import PlanOptions
from app.logs import configure_logging
from app.metrics_refresh import record_moneybird_response
from app.moneybird.client import MoneybirdClient
from app.moneybird.ratelimit import limiter_from_settings
from app.moneybird.reference import ReferenceCache
from app.plan_options import plan_options
from app.settings import Settings, load_settings
from app.settings_live import LiveSettings
from app.settings_store import administrations_of
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
    # Another connection's services borrow the worker's one engine (see `connection_services`).
    owns_engine: bool = True

    @property
    def connection_id(self) -> int:
        """The connection these services book for: the one their sessions are bound to."""
        return connection_of_sessions(self.sessions)

    @property
    def contact_book_id(self) -> int:
        """Whose contacts these services share (app.connection_scope): their administration's."""
        return contact_book_of_sessions(self.sessions)

    def plan_options(self) -> PlanOptions:
        return plan_options(self.settings, connection_id=self.connection_id)

    def defer(self, seconds: float) -> Retry:
        return Retry(defer=max(0.01, seconds * self.retry_scale))

    async def aclose(self) -> None:
        await self.shop.aclose()
        await self.moneybird.aclose()
        if self.owns_engine:
            await self.engine.dispose()


async def build_services(
    settings: Settings,
    redis: ArqRedis,
    *,
    shop_transport: httpx.AsyncBaseTransport | None = None,
    moneybird_transport: httpx.AsyncBaseTransport | None = None,
    environment: Settings | None = None,
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
    engine: AsyncEngine | None = None,
) -> Services:
    """Connection 1's services; tests pass `shop_transport`/`moneybird_transport` to reach fakes.

    Another connection's pass the `environment`'s settings too, so that its Moneybird calls share
    a limit with the environment's only when token and administration are the same
    (app.moneybird.ratelimit.limit_key); `for_connection` binds them to its ledger. With `engine`
    they borrow that one (every connection shares DATABASE_URL) and leave it open when closed.
    """
    owns_engine = engine is None
    engine = engine or create_engine(settings.database_url)
    limiter = await limiter_from_settings(redis, settings, environment=environment)
    moneybird = MoneybirdClient.from_settings(
        settings,
        limiter=limiter,
        transport=moneybird_transport,
        on_response=record_moneybird_response,
        on_unauthorized=token_refresher(settings, connection_id=connection_id),
    )
    return Services(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        redis=redis,
        shop=WooCommerceClient.from_settings(settings, transport=shop_transport),
        moneybird=moneybird,
        reference=ReferenceCache(redis, administration_id=settings.moneybird_administration_id),
        owns_engine=owns_engine,
    )


def for_connection(services: Services, *, connection_id: int, contact_book_id: int) -> Services:
    """`services` bound to one connection's ledger (and its administration's contact book)."""
    sessions = session_factory(services.engine, connection_id=connection_id, contact_book_id=contact_book_id)
    return dataclasses.replace(services, sessions=sessions)


async def startup(ctx: dict[str, Any]) -> None:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, sandbox=settings.woobird_sandbox)
    if "services" not in ctx:  # tests put their own services (pointing at fakes) in ctx
        engine = create_engine(settings.database_url)
        live = LiveSettings(settings, session_factory(engine))
        ctx["live_engine"] = engine
        ctx["live_settings"] = live
        ctx["retired_services"] = []
        ctx["connection_services"] = {}
        ctx["paused_connections"] = {}
        settings = await live.start()
        await say_sqlite_connections_problem(live.sessions, settings, log)
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


async def connection_services(ctx: dict[str, Any], connection_id: int) -> Services | None:
    """The services of one connection: connection 1's are `current_services`; another's are built
    from its stored settings the first time one of its jobs runs, and again when they change.
    None while its settings are incomplete (its jobs wait)."""
    if connection_id == ENVIRONMENT_CONNECTION_ID:
        return await current_services(ctx)
    built: dict[int, tuple[LiveSettings | None, Services]] = ctx["connection_services"]
    entry = built.get(connection_id)
    if entry is not None and (entry[0] is None or not await entry[0].refresh()):
        return entry[1]  # tests put theirs in with no LiveSettings
    first: LiveSettings = ctx["live_settings"]
    live = LiveSettings(first.base, first.sessions, connection_id=connection_id)
    settings = await live.start()
    missing = [name for name in settings.problems() if name not in WORKER_NOT_NEEDED]
    # A shop added in the set-up wizard books once the wizard has decided from when, as connection 1's.
    if missing or not booking_may_start(live.stored.progress):
        log.warning(
            "connection waits: its settings are incomplete", connection=connection_id, missing=missing
        )
        return None
    async with first.sessions() as session:
        administrations = await administrations_of(session, first=first.current)
    # One pool for every connection: an engine each would hold 50 connections' pools open against
    # PostgreSQL's limit (about 2 MiB and a handful of server connections per shop).
    services = for_connection(
        await build_services(
            settings,
            ctx["redis"],
            environment=first.current,
            connection_id=connection_id,
            engine=ctx.get("live_engine"),
        ),
        connection_id=connection_id,
        contact_book_id=contact_book_of(connection_id, administrations),
    )
    if entry is not None:
        ctx["retired_services"].append((time.monotonic(), entry[1]))
    built[connection_id] = (live, services)
    return services


# How long a worker trusts what it read about paused connections.
PAUSED_CHECK_SECONDS = 1.0


async def _paused(ctx: dict[str, Any], services: Services) -> bool:
    """Whether the job's connection is paused (or removed): read at most once a second per worker."""
    cache: dict[int, tuple[float, bool]] = ctx.setdefault("paused_connections", {})
    seen = cache.get(services.connection_id)
    now = time.monotonic()
    if seen is not None and now - seen[0] < PAUSED_CHECK_SECONDS:
        return seen[1]
    async with services.sessions() as session:
        paused = await is_paused(session, services.connection_id)
    cache[services.connection_id] = (now, paused)
    return paused


def when_set_up(job: Callable[..., Awaitable[Any]], *, wait_seconds: float | None = 60.0) -> Any:
    """Run the job with its connection's services (`connection_id`, connection 1 when absent);
    before set-up, wait (`wait_seconds`) or skip (None)."""

    @functools.wraps(job)
    async def run(
        ctx: dict[str, Any], *args: Any, connection_id: int = ENVIRONMENT_CONNECTION_ID, **kwargs: Any
    ) -> Any:
        services = await connection_services(ctx, connection_id)
        if services is None:
            if wait_seconds is None:
                return "woobird is not set up yet"
            raise Retry(defer=wait_seconds)
        if await _paused(ctx, services):
            # Its orders stay queued in the ledger; resuming the connection queues them again.
            return f"connection {connection_id} is paused"
        # arq gives every job a ctx of its own: this job's services are its connection's, and its log
        # lines name any connection but the environment's.
        if connection_id == ENVIRONMENT_CONNECTION_ID:
            return await job({**ctx, "services": services}, *args, **kwargs)
        with structlog.contextvars.bound_contextvars(connection=connection_id):
            return await job({**ctx, "services": services}, *args, **kwargs)

    return run


async def shutdown(ctx: dict[str, Any]) -> None:
    services: Services | None = ctx.get("services")
    if services is not None and ctx.get("owns_services", True):
        await services.aclose()
    for _, retired in ctx.get("retired_services", []):
        await retired.aclose()
    for live, services in ctx.get("connection_services", {}).values():
        if live is not None:
            await services.aclose()
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
