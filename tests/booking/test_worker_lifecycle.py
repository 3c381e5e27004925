"""The worker's start and stop (`workers.settings` on_startup / on_shutdown): what it opens from the
environment, it holds where the jobs look for it, and closes again; what a test lends it, it leaves."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.constants import WORKER_FRESH_SLOTS, WORKER_MAX_JOBS
from app.jobs import BACKLOG_SLOTS, BacklogSlots
from app.logs import configure_logging
from app.runtime import Services, current_services, shutdown, startup
from app.settings_live import LiveSettings
from tests.conftest import ADMIN_TOKEN, TEST_REDIS_URL, WEBHOOK_SECRET

ENVIRONMENT = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "SECRET_KEY": "9f4c2b7e1d8a6035c4e9b2f7a1d3e5c80b6f2a4d9e7c1358",
    "REDIS_URL": TEST_REDIS_URL,
    "MONEYBIRD_API_URL": "https://moneybird.test/api/v2",
    "WOOCOMMERCE_URL": "https://shop.test",
    "WOOCOMMERCE_CONSUMER_KEY": "ck_" + "a1" * 20,
    "WOOCOMMERCE_CONSUMER_SECRET": "cs_" + "b2" * 20,
    "WOOCOMMERCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "MONEYBIRD_API_TOKEN": "mb-personal-token-58c1e0f4a2b9",
    "MONEYBIRD_ADMINISTRATION_ID": "123456789012345678",
}


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A deployment's environment with both accounts; tests take settings out or add some."""
    for name, value in {**ENVIRONMENT, "DATABASE_URL": database_url}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """What shutdown closes: services and engines, in the order closed."""
    seen: dict[str, list[Any]] = {"services": [], "engines": []}
    close_services, dispose_engine = Services.aclose, AsyncEngine.dispose

    async def services_closed(self: Services) -> None:
        seen["services"].append(self)
        await close_services(self)

    async def engine_disposed(self: AsyncEngine, close: bool = True) -> None:
        seen["engines"].append(self)
        await dispose_engine(self, close)

    monkeypatch.setattr(Services, "aclose", services_closed)
    monkeypatch.setattr(AsyncEngine, "dispose", engine_disposed)
    return seen


async def test_the_worker_builds_its_services_from_the_environment_and_closes_them_on_stop(
    redis: ArqRedis, environment: pytest.MonkeyPatch, closed: dict[str, list[Any]]
) -> None:
    ctx: dict[str, Any] = {"redis": redis}

    await startup(ctx)

    services = ctx["services"]
    assert isinstance(services, Services)
    assert services.moneybird.administration_id == ENVIRONMENT["MONEYBIRD_ADMINISTRATION_ID"]
    assert isinstance(ctx["live_settings"], LiveSettings)  # where each job looks for changed settings
    assert ctx["retired_services"] == []
    assert await current_services(ctx) is services  # nothing changed: the same services
    live_engine = ctx["live_engine"]

    await shutdown(ctx)

    assert closed["services"] == [services]
    assert services.engine in closed["engines"]
    assert live_engine in closed["engines"]


async def test_services_a_test_lends_the_worker_are_used_and_left_open(
    redis: ArqRedis, environment: pytest.MonkeyPatch, closed: dict[str, list[Any]]
) -> None:
    lent = object()
    ctx: dict[str, Any] = {"redis": redis, "services": lent, "owns_services": False}

    await startup(ctx)
    assert ctx["services"] is lent
    assert "live_settings" not in ctx  # no store to watch: the lender decides
    await shutdown(ctx)

    assert closed == {"services": [], "engines": []}


async def test_without_an_account_the_worker_starts_and_waits_and_without_an_admin_token_it_books(
    redis: ArqRedis, environment: pytest.MonkeyPatch, closed: dict[str, list[Any]]
) -> None:
    environment.delenv("MONEYBIRD_API_TOKEN")
    waiting: dict[str, Any] = {"redis": redis}
    await startup(waiting)
    assert "services" in waiting
    assert waiting["services"] is None  # jobs wait for the wizard (or the environment)
    await shutdown(waiting)

    environment.setenv("MONEYBIRD_API_TOKEN", ENVIRONMENT["MONEYBIRD_API_TOKEN"])
    environment.delenv("ADMIN_TOKEN")  # the dashboard's, not the worker's
    booking: dict[str, Any] = {"redis": redis}
    await startup(booking)
    assert isinstance(booking["services"], Services)
    await shutdown(booking)


async def test_services_retired_after_a_settings_change_are_closed_when_the_worker_stops(
    redis: ArqRedis, environment: pytest.MonkeyPatch, closed: dict[str, list[Any]]
) -> None:
    ctx: dict[str, Any] = {"redis": redis}
    await startup(ctx)
    retired = ctx["services"]
    ctx["retired_services"].append((0.0, retired))  # what a settings change leaves for jobs still running
    ctx["services"] = None

    await shutdown(ctx)

    assert closed["services"] == [retired]


async def test_the_worker_logs_as_its_settings_say(
    redis: ArqRedis, environment: pytest.MonkeyPatch, closed: dict[str, list[Any]]
) -> None:
    environment.setenv("LOG_FORMAT", "json")
    environment.setenv("LOG_LEVEL", "WARNING")
    environment.setenv("WOOBIRD_SANDBOX", "true")
    ctx: dict[str, Any] = {"redis": redis}
    try:
        await startup(ctx)
        processors = structlog.get_config()["processors"]
        sandbox_mark = processors[0](None, "info", {"event": "x"})
        logger = structlog.get_config()["wrapper_class"]
    finally:
        await shutdown(ctx)
        configure_logging()  # as the other tests expect it
    assert isinstance(processors[-1], structlog.processors.JSONRenderer)  # LOG_FORMAT=json
    assert logger.__name__ == "BoundLoggerFilteringAtWarning"  # LOG_LEVEL=WARNING drops info lines…
    assert sandbox_mark == {"event": "x", "sandbox": True}  # …and sandbox lines say so


async def test_the_procfile_worker_keeps_slots_that_a_backfill_never_takes(
    redis: ArqRedis, environment: pytest.MonkeyPatch
) -> None:
    # Imported here: workers.settings reads the environment when it is imported.
    from workers.functions import on_shutdown, on_startup
    from workers.settings import WorkerSettings

    ctx: dict[str, Any] = {"redis": redis}
    await on_startup(ctx)
    try:
        slots = ctx[BACKLOG_SLOTS]
        assert isinstance(slots, BacklogSlots)
        assert WorkerSettings.max_jobs == WORKER_MAX_JOBS
        assert slots.limit == WorkerSettings.max_jobs - WORKER_FRESH_SLOTS
        assert 0 < slots.limit < WorkerSettings.max_jobs
    finally:
        await on_shutdown(ctx)
