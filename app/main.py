"""The web process: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from app import __version__, health, moneybird_pushes, webhooks
from app.admin.connections_page import router as connections_router
from app.admin.routes import router as admin_router
from app.admin.settings_page import router as settings_router
from app.admin.setup_routes import callback_router as setup_callback_router
from app.admin.setup_routes import router as setup_router
from app.booking import redis_marker
from app.booking.intake import IntakeWriter
from app.connections import say_sqlite_connections_problem
from app.db import create_engine, create_sync_sqlite_engine, session_factory
from app.delivery_lag import DeliveryLags
from app.deps import AppState
from app.logs import configure_logging
from app.metrics_refresh import CachedGauges
from app.platform_proxy import PlatformProxyMiddleware, detect_platform
from app.queue import connect
from app.settings import WEB_REQUIRED, ConfigurationError, Settings, load_settings, one_line
from app.settings_live import LiveSettings

log = structlog.get_logger("woobird.web")


def build_state(settings: Settings) -> AppState:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    redis = connect(settings.redis_url, tls_verify=settings.redis_tls_verify)
    return AppState(
        settings=settings,
        live=LiveSettings(settings, sessions),
        engine=engine,
        sessions=sessions,
        redis=redis,
        writer=IntakeWriter(sessions=sessions, redis=redis, thread_sessions=_thread_sessions(settings)),
        lags=DeliveryLags(redis),
        since_setting=settings.sync_since,
    )


def _thread_sessions(settings: Settings) -> sessionmaker[Session] | None:
    """SQLite's intake batches go through a plain engine in one thread hop (see IntakeWriter)."""
    if not settings.is_sqlite:
        return None
    return sessionmaker(create_sync_sqlite_engine(settings.database_url), expire_on_commit=False)


def create_app(settings: Settings | None = None, *, watch_redis: bool | None = None) -> FastAPI:
    """The FastAPI application; refuses to start without ADMIN_TOKEN or on a malformed setting.

    The accounts may be missing: then /admin serves the set-up wizard, which stores them, and the
    webhook refuses deliveries until a secret exists. `watch_redis` (default: only for the app
    built from the environment, as uvicorn's factory does) looks for Redis losing its data and
    queues again what it lost (app.booking.redis_marker); tests that flush Redis leave it off.
    """
    watch_redis = settings is None if watch_redis is None else watch_redis
    settings = settings or load_settings().require(*WEB_REQUIRED)
    configure_logging(level=settings.log_level, fmt=settings.log_format, sandbox=settings.woobird_sandbox)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings)
        assert state.live is not None
        try:
            state.settings = await state.live.start()
        except ConfigurationError as exc:
            # uvicorn logs the traceback of a failed start bounded, which cuts off the message at its
            # end: the refusal goes first, whole, on one line of its own.
            log.error(one_line(exc))
            await state.redis.aclose()
            await state.engine.dispose()
            raise exc from None
        state.since_setting = state.settings.sync_since
        app.state.woobird = state
        log.info("web started", version=__version__, sandbox=settings.woobird_sandbox)
        await say_sqlite_connections_problem(state.sessions, state.settings, log)
        watch = (
            redis_marker.watching(lambda: state, busy=redis_marker.queued_recently) if watch_redis else None
        )
        try:
            yield
        finally:
            await state.finish_refreshing()
            await redis_marker.stop(watch)
            await state.writer.aclose()
            await state.lags.aclose()
            await state.redis.aclose()
            await state.engine.dispose()

    # No docs pages, and no /openapi.json either: the schema is for the tests, not for visitors.
    app = FastAPI(
        title="woobird",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Starlette's redirect of /x/ to /x names the request's Host header in its Location: a forged
        # Host would send the browser elsewhere. A path with a stray slash is simply not found.
        redirect_slashes=False,
    )
    app.add_middleware(PlatformProxyMiddleware, platform=detect_platform(settings.trusted_proxy))
    app.include_router(webhooks.router)
    app.include_router(moneybird_pushes.router)
    app.include_router(health.router)
    app.include_router(admin_router)
    app.include_router(connections_router)
    app.include_router(settings_router)
    app.include_router(setup_router)
    app.include_router(setup_callback_router)
    gauges = CachedGauges()

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> PlainTextResponse:
        if not _may_scrape(settings, request.headers.get("authorization", "")):
            return PlainTextResponse(
                "send METRICS_TOKEN as Authorization: Bearer",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="woobird metrics"'},
            )
        await gauges.refresh(app.state.woobird)
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def _may_scrape(settings: Settings, authorization: str) -> bool:
    """Anyone, unless METRICS_TOKEN is set; then only a bearer of it (compared in constant time)."""
    if settings.metrics_token is None:
        return True
    scheme, _, given = authorization.partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)
