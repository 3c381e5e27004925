"""What every job shares for the worker's lifetime, and what every job body runs inside.

`Services` is built once when the worker starts. Job arguments are ids and strings only (arq
pickles them). Each job body is wrapped by `retry_transient`, the one place where a passing
failure (`app.retry.TryAgainLater`, or Redis) becomes `arq.Retry` by `app.retry.retry_delay`;
anything else is recorded in the ledger by the body itself. `exclusively` keeps a second worker
off an order or refund that one is already booking.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

import structlog
from arq import Retry
from arq.connections import ArqRedis
from redis.exceptions import LockError, RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.constants import WORKER_MAX_TRIES
from app.db import create_engine, session_factory
from app.held_locks import holding
from app.logs import configure_logging
from app.metrics import JOBS
from app.metrics_refresh import record_moneybird_response
from app.moneybird.client import MoneybirdClient
from app.moneybird.ratelimit import limiter_from_settings
from app.moneybird.reference import ReferenceCache
from app.retry import TryAgainLater, retry_delay
from app.settings import Settings, load_settings
from app.settings_live import LiveSettings
from app.setup.moneybird_connect import token_refresher
from app.setup.progress import booking_may_start
from app.woocommerce.client import WooCommerceClient

log = structlog.get_logger("woobird.worker")

# The worker books without these (the web process needs them).
WORKER_NOT_NEEDED = frozenset({"ADMIN_TOKEN"})

# See `exclusively`: more than nothing, less than the 10 s arq adds to the job timeout.
LOCK_MARGIN_SECONDS = 5
# A job stops itself this long before arq's job timeout would, to be tried again (see `_in_time`).
JOB_DEADLINE_MARGIN_SECONDS = 2

P = ParamSpec("P")
R = TypeVar("R")


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


@asynccontextmanager
async def exclusively(
    services: Services, key: str, *, wait_seconds: float = 0, hold_seconds: float | None = None
) -> AsyncIterator[None]:
    """Hold `key` while a job works; when another worker holds it past `wait_seconds`, come back
    once it is done."""
    # By default it outlives the job (arq cancels it at the job timeout) yet expires before arq's
    # in-progress key (timeout + 10 s): a killed worker's job, taken up again, finds it gone.
    timeout = hold_seconds or services.settings.worker_job_timeout_seconds + LOCK_MARGIN_SECONDS
    lock = services.redis.lock(key, timeout=timeout)
    acquired = await (
        lock.acquire(blocking=True, blocking_timeout=wait_seconds)
        if wait_seconds
        else lock.acquire(blocking=False)
    )
    if not acquired:
        raise services.defer(5)
    try:
        async with holding(lock):
            yield
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning("lock expired before the job finished", lock=key)


class OutOfTime(TryAgainLater):
    """A job that used up its time: its next try goes on from the last step the ledger wrote down."""


async def _in_time(services: Services, work: Awaitable[R]) -> R:
    """`work`, stopped a little before arq's job timeout so that it is tried again.

    arq counts a job that reaches its timeout as failed and drops it, which would leave its order
    in `booking` until the reconciliation pass takes it as stale (the job timeout + 60 s later).
    """
    budget = max(1.0, services.settings.worker_job_timeout_seconds - JOB_DEADLINE_MARGIN_SECONDS)
    try:
        async with asyncio.timeout(budget) as deadline:
            return await work
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise OutOfTime(f"the job ran out of its {budget:g} s") from exc


# What a job does when it stops retrying: record the failure in its ledger (args after ctx).
GiveUp = Callable[[Services, tuple[Any, ...], str], Awaitable[None]]


def retry_transient(
    kind: str, *, give_up: GiveUp
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Turn a passing failure into `arq.Retry` with backoff; give up after WORKER_MAX_TRIES.

    The wrapped job's first argument is arq's ctx and its second the order id. A job that gives
    up says so in the ledger through `give_up` instead of failing silently in Redis.
    """

    def decorate(job: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(job)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx: dict[str, Any] = args[0]  # type: ignore[assignment]
            order_id = int(args[1])  # type: ignore[call-overload]
            job_try = int(ctx.get("job_try", 1))
            services = services_of(ctx)
            try:
                return await _in_time(services, job(*args, **kwargs))
            except (TryAgainLater, RedisError) as exc:
                JOBS.labels(kind=kind, outcome="retried").inc()
                if job_try >= WORKER_MAX_TRIES:
                    message = f"gave up after {job_try} tries; last error: {exc}"
                    await give_up(services, tuple(args[1:]), message)
                    JOBS.labels(kind=kind, outcome="gave_up").inc()
                    raise
                delay = retry_delay(job_try=job_try, error=exc, now=time.time(), scale=services.retry_scale)
                log.warning(
                    "will retry",
                    job=kind,
                    order_id=order_id,
                    job_try=job_try,
                    in_seconds=round(delay, 1),
                    error=str(exc),
                )
                raise Retry(defer=max(0.01, delay)) from exc

        return run

    return decorate
